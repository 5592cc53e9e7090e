package main

import "github.com/spf13/cobra"

func newBenchCmd(a *app) *cobra.Command {
	return group("bench", "GPU kernel and end-to-end benchmarks", newBenchKernelsCmd(a), newBenchE2ECmd(a), newBenchLMCmd(a))
}

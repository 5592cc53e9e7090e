package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func newBenchCmd(a *app) *cobra.Command {
	return group("bench", "GPU kernel and end-to-end benchmarks", newBenchKernelsCmd(a), newBenchE2ECmd(a), newBenchLMCmd(a), newBenchDecodeCmd(a))
}

// report is what the bench subcommands' reports do.
type report interface {
	Print(w io.Writer)
	WriteJSON(w io.Writer) error
}

// writeReport prints rep on stdout, then, where their paths are given,
// draws it to plotPath with plot and writes its JSON to jsonPath.
func writeReport(stdout io.Writer, rep report, plotPath string, plot func(string) error, jsonPath string) error {
	fmt.Fprintln(stdout)
	rep.Print(stdout)
	if plotPath != "" {
		if err := plot(plotPath); err != nil {
			return err
		}
	}
	if jsonPath == "" {
		return nil
	}
	out, err := os.Create(jsonPath)
	if err != nil {
		return err
	}
	if err := rep.WriteJSON(out); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeJSONFile writes v to path as indented JSON.
func writeJSONFile(path string, v any) error {
	buf, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, buf, 0o644)
}

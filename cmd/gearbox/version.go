package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox/internal/buildinfo"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS revision and Go version of this binary",
		Long: `Prints the version, VCS revision and Go version recorded in this binary by the
Go toolchain ("go build" in a git checkout records the revision; "go run"
does not). The worker exports the same as the gearbox_build_info metric.`,
		Args: argsRange(0, 0, "no arguments"),
		// Needs no configuration: a bad environment does not stop it.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "gearbox %s\n", buildinfo.Read())
			return err
		},
	}
}

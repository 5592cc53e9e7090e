package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gearbox-inference/gearbox/internal/buildinfo"
)

// usageError is a command line the command cannot run: the exit status is
// 2 and the message points at --help.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// newRootCmd builds the command tree on a.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "gearbox",
		Short: "Batch inference on NATS JetStream",
		Long: `gearbox: batch inference on NATS JetStream.

Workers pull jobs from gearbox.jobs.<model>, batch them by model and
precision, run them on CUDA or the CPU and publish one result per job to
gearbox.results.<model>. Every command reads the GEARBOX_* environment
variables (see the README's configuration table).`,
		Version:           buildinfo.Read().String(),
		SilenceErrors:     true,
		SilenceUsage:      true,
		Args:              cobra.ArbitraryArgs,
		RunE:              groupRun,
		PersistentPreRunE: func(*cobra.Command, []string) error { return a.setup() },
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newWorkerCmd(a), newDemoCmd(a), newSubmitCmd(a), newResultsCmd(a),
		newModelCmd(a), newGenerateCmd(a), newTokenizeCmd(), newPolicyCmd(a), newQualityCmd(a), newBenchCmd(a), newVersionCmd(),
	)
	return root
}

// groupRun runs a command that only holds subcommands: the root alone
// prints its help; otherwise it names the subcommands it wants.
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 && !cmd.HasParent() {
		cmd.SetOut(cmd.ErrOrStderr())
		_ = cmd.Help()
		return usageError{errors.New("no command given")}
	}
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	want := "want one of " + strings.Join(names, ", ")
	if len(args) == 0 {
		return usageError{fmt.Errorf("missing command: %s", want)}
	}
	return usageError{fmt.Errorf("unknown command %q: %s", args[0], want)}
}

// group is a command that holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: groupRun}
	c.AddCommand(subs...)
	return c
}

// argsRange returns an argument validator taking lo to hi arguments,
// named in its error as what.
func argsRange(lo, hi int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usageError{fmt.Errorf("want %s, got %d argument(s) %q", what, len(args), args)}
		}
		return nil
	}
}

// goStyleFlags rewrites Go-style single-dash long flags (-jobs 10,
// -wait=true), which the flag package accepted before this command used
// pflag, to --jobs: an argument is rewritten only when its name is a long
// flag of some command in the tree, and nothing after "--" is touched.
func goStyleFlags(root *cobra.Command, args []string) []string {
	long := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		visit := func(f *pflag.Flag) { long[f.Name] = true }
		c.LocalFlags().VisitAll(visit)
		c.PersistentFlags().VisitAll(visit)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if len(name) > 1 && long[name] {
			out[i] = "-" + a
		}
	}
	return out
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox"
)

func newResultsCmd(a *app) *cobra.Command {
	var fromStart, asJSON bool
	c := &cobra.Command{
		Use:   "results [flags] MODEL",
		Short: `Follow a model's results ("*" for every model)`,
		Long:  `Follows MODEL's results ("*" for every model) until interrupted.`,
		Args:  argsRange(1, 1, "one MODEL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runResults(cmd.Context(), &a.cfg, a.log, args[0], fromStart, asJSON, cmd.OutOrStdout())
		},
	}
	c.Flags().BoolVar(&fromStart, "from-start", false, "print stored results first, then follow")
	c.Flags().BoolVar(&asJSON, "json", false, "print each result as a JSON line")
	return c
}

func runResults(ctx context.Context, cfg *config, log zerolog.Logger, name string, fromStart, asJSON bool, out io.Writer) error {
	nc, closeNATS, err := connect(ctx, cfg, log, "gearbox-results", false)
	if err != nil {
		return err
	}
	defer closeNATS()
	client, err := gearbox.NewClient(nc, gearbox.WithPrefix(cfg.Prefix))
	if err != nil {
		return err
	}
	for r, err := range client.Results(ctx, name, fromStart) {
		if err != nil {
			return err
		}
		printResult(out, r, asJSON)
	}
	return nil
}

// printResult writes r as one line: JSON, or a short human summary.
func printResult(w io.Writer, r *gearbox.Result, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(r)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	if r.Error != nil {
		fmt.Fprintf(w, "%s\t%s\tERROR %s: %s\n", r.ID, r.Model, r.Error.Code, r.Error.Message)
		return
	}
	if r.Usage != nil { // a language-model job
		what := r.FinishReason
		if r.Text != "" {
			what += " " + strconv.Quote(r.Text)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d+%d tokens\tqueued %.2fms ttft %.2fms compute %.2fms\t%s\n",
			r.ID, r.Model, r.Precision, r.Usage.PromptTokens, r.Usage.CompletionTokens, r.QueuedMs, r.TTFTMs, r.ComputeMs, what)
		return
	}
	head := ""
	if r.Output != nil {
		if vs, err := r.Output.Values(); err == nil {
			n := min(len(vs), 4)
			head = fmt.Sprint(vs[:n])
			if len(vs) > n {
				head = head[:len(head)-1] + " …]"
			}
			head = fmt.Sprintf("%v %s", r.Output.Shape, head)
		}
	}
	fmt.Fprintf(w, "%s\t%s\t%s\tbatch %s (%d rows)\tqueued %.2fms compute %.2fms\t%s\n",
		r.ID, r.Model, r.Precision, r.Batch, r.BatchRows, r.QueuedMs, r.ComputeMs, head)
}

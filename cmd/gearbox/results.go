package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
)

func runResults(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	fs := flag.NewFlagSet("results", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gearbox results [flags] MODEL\n\nFollows MODEL's results (\"*\" for every model) until interrupted.")
		fs.PrintDefaults()
	}
	fromStart := fs.Bool("from-start", false, "print stored results first, then follow")
	asJSON := fs.Bool("json", false, "print each result as a JSON line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	nc, closeNATS, err := connect(ctx, cfg, log, "gearbox-results", false)
	if err != nil {
		return err
	}
	defer closeNATS()
	client, err := gearbox.NewClient(nc, gearbox.WithPrefix(cfg.Prefix))
	if err != nil {
		return err
	}
	for r, err := range client.Results(ctx, fs.Arg(0), *fromStart) {
		if err != nil {
			return err
		}
		printResult(os.Stdout, r, *asJSON)
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

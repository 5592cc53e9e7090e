package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
)

const policyUsage = `usage:
  gearbox policy get [--history] [--json] MODEL   a model's precision policy (and its changes)
  gearbox policy set [flags] MODEL                pin precision, floor, ceiling or max_error by hand
  gearbox policy watch [--json] [MODEL]           follow policy changes ("*" or nothing: every model)`

func runPolicy(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("missing subcommand\n%s", policyUsage)
	}
	switch args[0] {
	case "get":
		return policyGet(ctx, cfg, log, os.Stdout, args[1:])
	case "set":
		return policySet(ctx, cfg, log, args[1:])
	case "watch":
		return policyWatch(ctx, cfg, log, args[1:])
	default:
		return fmt.Errorf("unknown subcommand %q\n%s", args[0], policyUsage)
	}
}

// parseArgs parses flags wherever they stand among the positional
// arguments ("policy set demo --max-error 0.1" as well as flags first) and
// returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// modelArg parses args and returns the one MODEL they name; with none,
// def when it is not empty (MODEL optional), else an error.
func modelArg(fs *flag.FlagSet, args []string, def string) (string, error) {
	pos, err := parseArgs(fs, args)
	switch {
	case err != nil:
		return "", err
	case len(pos) == 1:
		return pos[0], nil
	case len(pos) == 0 && def != "":
		return def, nil
	}
	return "", fmt.Errorf("want one MODEL, got %q\n%s", pos, policyUsage)
}

// policyKV connects and opens the policy bucket.
func policyKV(ctx context.Context, cfg *config, log zerolog.Logger) (jetstream.JetStream, jetstream.KeyValue, gearbox.Subjects, func(), error) {
	subj, err := cfg.subjects()
	if err != nil {
		return nil, nil, subj, nil, err
	}
	nc, closeNATS, err := connect(ctx, cfg, log, "gearbox-policy", false)
	if err != nil {
		return nil, nil, subj, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		closeNATS()
		return nil, nil, subj, nil, err
	}
	kv, err := gearbox.PolicyStore(ctx, js, subj, cfg.Replicas, false)
	if err != nil {
		closeNATS()
		return nil, nil, subj, nil, fmt.Errorf("%w (start a worker once, or run with GEARBOX_PROVISION, to create it)", err)
	}
	return js, kv, subj, closeNATS, nil
}

func policyGet(ctx context.Context, cfg *config, log zerolog.Logger, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("policy get", flag.ContinueOnError)
	history := fs.Bool("history", false, "list every stored change, oldest first")
	asJSON := fs.Bool("json", false, "print JSON")
	name, err := modelArg(fs, args, "")
	if err != nil {
		return err
	}
	js, kv, subj, done, err := policyKV(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer done()
	var entries []jetstream.KeyValueEntry
	if *history {
		entries, err = kv.History(ctx, name)
	} else {
		var e jetstream.KeyValueEntry
		if e, err = kv.Get(ctx, name); err == nil {
			entries = []jetstream.KeyValueEntry{e}
		}
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	// The controller's view now: the workers' replay, made here.
	st, known, err := quality.Inspect(ctx, js, subj, kv, name, cfg.quality().Rules)
	if err != nil {
		return fmt.Errorf("controller state of %s: %w", name, err)
	}
	if len(entries) == 0 && !known {
		return fmt.Errorf("model %q has no policy and no quality reports yet: its auto jobs run at its manifest's initial precision", name)
	}
	type line struct {
		Revision uint64 `json:"revision"`
		*gearbox.PrecisionPolicy
		Controller *quality.Status `json:"controller,omitempty"`
	}
	var lines []line
	for _, e := range entries {
		if e.Operation() != jetstream.KeyValuePut {
			fmt.Fprintf(out, "revision %d: deleted\n", e.Revision())
			continue
		}
		p, err := gearbox.DecodePolicy(e.Value())
		if err != nil {
			return fmt.Errorf("revision %d: %w", e.Revision(), err)
		}
		lines = append(lines, line{Revision: e.Revision(), PrecisionPolicy: p})
	}
	if known {
		if len(lines) == 0 || lines[len(lines)-1].Revision != st.Rev {
			lines = append(lines, line{Revision: st.Rev, PrecisionPolicy: &st.Policy}) // none stored: the manifest's
		}
		lines[len(lines)-1].Controller = &st
	}
	for _, l := range lines {
		if *asJSON {
			b, _ := json.Marshal(l)
			fmt.Fprintf(out, "%s\n", b)
			continue
		}
		printPolicy(out, l.Revision, l.PrecisionPolicy, l.Controller)
	}
	return nil
}

// printPolicy writes a policy for people (rev 0: the manifest's, none
// stored), and the controller's view of it when st is not nil.
func printPolicy(w io.Writer, rev uint64, p *gearbox.PrecisionPolicy, st *quality.Status) {
	maxErr := "manifest's"
	if p.MaxError > 0 {
		maxErr = fmt.Sprintf("%g", p.MaxError)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	switch {
	case rev == 0 && st != nil && len(st.Pending) > 0:
		fmt.Fprintf(tw, "model\t%s (no policy stored: the replay's, pending below)\n", p.Model)
	case rev == 0:
		fmt.Fprintf(tw, "model\t%s (no policy stored: the manifest's)\n", p.Model)
	default:
		fmt.Fprintf(tw, "model\t%s (revision %d)\n", p.Model, rev)
	}
	fmt.Fprintf(tw, "precision\t%s [floor %s, ceiling %s]\n", p.Precision, p.Floor, p.Ceiling)
	fmt.Fprintf(tw, "max_error\t%s\n", maxErr)
	if rev > 0 {
		fmt.Fprintf(tw, "reason\t%s\n", p.Reason)
		fmt.Fprintf(tw, "by\t%s at %s, report seq %d\n", p.By, p.UpdatedAt.Local().Format(time.DateTime), p.Seq)
	}
	if e := p.Evidence; e != nil {
		fmt.Fprintf(tw, "evidence\t%s\n", evidence(e))
	}
	if len(p.Measured) > 0 {
		var parts []string
		for _, f := range precision.All {
			if v, ok := p.Measured[f]; ok {
				parts = append(parts, fmt.Sprintf("%s %.3g", f, v))
			}
		}
		fmt.Fprintf(tw, "measured\t%s\n", strings.Join(parts, ", "))
	}
	if len(p.Excluded) > 0 {
		fmt.Fprintf(tw, "excluded\t%v (non-finite outputs where fp32 is finite)\n", p.Excluded)
	}
	if st != nil {
		printStatus(tw, st)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// printStatus writes the controller's view of a model to tw.
func printStatus(tw io.Writer, st *quality.Status) {
	switch {
	case st.Hold != "":
		fmt.Fprintf(tw, "controller\tholding %s (%s): %s [report seq %d]\n", st.Policy.Precision, st.Hold, st.Reason, st.Position)
	default:
		fmt.Fprintf(tw, "controller\tno report since the policy took effect [report seq %d]\n", st.Position)
	}
	for _, e := range st.Windows {
		fmt.Fprintf(tw, "window\t%s\n", evidence(&e))
	}
	if st.Cold {
		fmt.Fprintln(tw, "cold\tthe stream has dropped reports: a step down needs a full window")
	}
	for _, p := range st.Pending {
		fmt.Fprintf(tw, "pending\t%s at report seq %d, not stored (a write in flight, no controller running, or other rules than the workers'): %s\n",
			p.Precision, p.Seq, p.Reason)
	}
}

// evidence describes a window of observations.
func evidence(e *gearbox.Evidence) string {
	s := fmt.Sprintf("%s: %d reports from %d workers (seq %d–%d), upper bound %.4g, mean %.4g",
		e.Precision, e.Samples, e.Workers, e.FirstSeq, e.LastSeq, e.UpperBound, e.Mean)
	if e.NonFinite > 0 {
		s += fmt.Sprintf(", %d non-finite", e.NonFinite)
	}
	return s
}

func policySet(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	fs := flag.NewFlagSet("policy set", flag.ContinueOnError)
	prec := fs.String("precision", "", "serve auto jobs at this precision from now on (the controller may move it again within floor and ceiling)")
	floor := fs.String("floor", "", "the cheapest precision the controller may choose")
	ceiling := fs.String("ceiling", "", "the most accurate precision the controller may choose")
	maxErr := fs.Float64("max-error", -1, "the model's accuracy target (relative L2); 0 restores the manifest's")
	pin := fs.Bool("pin", false, "pin --precision: floor = ceiling = precision, so the controller cannot move it")
	reason := fs.String("reason", "", "why, for the record")
	name, err := modelArg(fs, args, "")
	if err != nil {
		return err
	}
	parse := func(flagName, s string) (precision.Format, error) {
		if s == "" {
			return "", nil
		}
		f := precision.Format(strings.ToLower(s))
		if !f.Valid() {
			return "", fmt.Errorf("--%s %q: want one of %v", flagName, s, precision.All)
		}
		return f, nil
	}
	p, err := parse("precision", *prec)
	if err != nil {
		return err
	}
	fl, err := parse("floor", *floor)
	if err != nil {
		return err
	}
	cl, err := parse("ceiling", *ceiling)
	if err != nil {
		return err
	}
	if *pin && p == "" {
		return errors.New("--pin needs --precision")
	}
	if p == "" && fl == "" && cl == "" && *maxErr < 0 {
		return errors.New("nothing to set: give --precision, --floor, --ceiling or --max-error")
	}
	js, kv, subj, done, err := policyKV(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer done()
	base := basePolicy(ctx, js, subj, name)
	var changes []string
	pol, rev, err := quality.SetPolicy(ctx, js, subj, kv, name, base, func(q *gearbox.PrecisionPolicy) error {
		changes = changes[:0]
		if p != "" {
			q.Precision = p
			changes = append(changes, "precision "+string(p))
		}
		if *pin {
			fl, cl = p, p
		}
		if fl != "" {
			q.Floor = fl
			changes = append(changes, "floor "+string(fl))
		}
		if cl != "" {
			q.Ceiling = cl
			changes = append(changes, "ceiling "+string(cl))
		}
		// Keep the precision inside new bounds unless it was given.
		if p == "" && q.Precision.MoreAccurate(q.Ceiling) {
			q.Precision = q.Ceiling
		}
		if p == "" && q.Floor.MoreAccurate(q.Precision) {
			q.Precision = q.Floor
		}
		if *maxErr >= 0 {
			q.MaxError = *maxErr
			changes = append(changes, fmt.Sprintf("max_error %g", *maxErr))
		}
		q.Reason = "set by hand: " + strings.Join(changes, ", ")
		if *reason != "" {
			q.Reason += " (" + *reason + ")"
		}
		return nil
	})
	if err != nil {
		return err
	}
	printPolicy(os.Stdout, rev, &pol, nil)
	return nil
}

// basePolicy is the policy a model without one has: its manifest's, when the
// model is in the object store, else the default ladder from fp32.
func basePolicy(ctx context.Context, js jetstream.JetStream, subj gearbox.Subjects, name string) gearbox.PrecisionPolicy {
	ladder, initial := precision.DefaultLadder, precision.FP32
	if m, err := model.Fetch(ctx, js, subj.ModelBucket(), name); err == nil {
		ladder, initial = m.Precision.Ladder, m.Precision.Initial
	}
	return gearbox.PrecisionPolicy{Model: name, Precision: initial, Floor: ladder[len(ladder)-1], Ceiling: ladder[0]}
}

func policyWatch(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	fs := flag.NewFlagSet("policy watch", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON lines")
	key, err := modelArg(fs, args, "*")
	if err != nil {
		return err
	}
	_, kv, _, done, err := policyKV(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer done()
	w, err := kv.Watch(ctx, key)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				continue // the current values are printed; now the changes
			}
			if e.Operation() != jetstream.KeyValuePut {
				fmt.Printf("%s\t%s\tdeleted\n", e.Created().Local().Format(time.TimeOnly), e.Key())
				continue
			}
			p, err := gearbox.DecodePolicy(e.Value())
			if err != nil {
				log.Warn().Err(err).Str("model", e.Key()).Msg("skipping policy")
				continue
			}
			if *asJSON {
				b, _ := json.Marshal(p)
				fmt.Printf("%s\n", b)
				continue
			}
			fmt.Printf("%s\t%s\t%s\trev %d\tby %s\t%s\n", e.Created().Local().Format(time.TimeOnly), e.Key(), p.Precision, e.Revision(), p.By, p.Reason)
		}
	}
}

// runQuality follows quality reports as a live table.
func runQuality(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	fs := flag.NewFlagSet("quality", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gearbox quality [flags] [MODEL]\n\nFollows quality reports (of MODEL, or every model) as a table until interrupted.")
		fs.PrintDefaults()
	}
	fromStart := fs.Bool("from-start", false, "print stored reports first, then follow")
	asJSON := fs.Bool("json", false, "print each report as a JSON line")
	name, err := modelArg(fs, args, "*")
	if err != nil {
		return err
	}
	nc, closeNATS, err := connect(ctx, cfg, log, "gearbox-quality", false)
	if err != nil {
		return err
	}
	defer closeNATS()
	client, err := gearbox.NewClient(nc, gearbox.WithPrefix(cfg.Prefix))
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if !*asJSON {
		fmt.Fprintln(tw, "time\tmodel\tworker\trows\tserved\terror\tcandidate\terror\tcosine\ttop1\tnon-finite\t")
		tw.Flush()
	}
	for r, err := range client.QualityReports(ctx, name, *fromStart) {
		if err != nil {
			return err
		}
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Printf("%s\n", b)
			continue
		}
		cand, cerr := "-", "-"
		nonFinite := r.ServedMetrics.NonFinite
		if c := r.CandidateMetrics; c != nil {
			cand, cerr = string(r.Candidate), fmt.Sprintf("%.3e", c.RelL2)
			nonFinite += c.NonFinite
		}
		top1 := "-"
		if t := r.ServedMetrics.Top1; t != nil {
			top1 = fmt.Sprintf("%.3f", *t)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%.3e\t%s\t%s\t%.6f\t%s\t%d\t\n", r.Time.Local().Format(time.TimeOnly), r.Model, r.Worker, r.Rows,
			r.Served, r.ServedMetrics.RelL2, cand, cerr, r.ServedMetrics.Cosine, top1, nonFinite)
		tw.Flush()
	}
	return nil
}

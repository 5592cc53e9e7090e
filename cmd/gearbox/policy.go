package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
	"github.com/gearbox-inference/gearbox/quality"
)

func newPolicyCmd(a *app) *cobra.Command {
	return group("policy", "Read, pin or follow a model's precision policy",
		newPolicyGetCmd(a), newPolicySetCmd(a), newPolicyWatchCmd(a))
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

func newPolicyGetCmd(a *app) *cobra.Command {
	var history, asJSON bool
	c := &cobra.Command{
		Use:   "get [--history] [--json] MODEL",
		Short: "A model's precision policy (and its changes), and the controller's view of it",
		Args:  argsRange(1, 1, "one MODEL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return policyGet(cmd.Context(), &a.cfg, a.log, cmd.OutOrStdout(), args[0], history, asJSON)
		},
	}
	c.Flags().BoolVar(&history, "history", false, "list every stored change, oldest first")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func policyGet(ctx context.Context, cfg *config, log zerolog.Logger, out io.Writer, name string, history, asJSON bool) error {
	js, kv, subj, done, err := policyKV(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer done()
	var entries []jetstream.KeyValueEntry
	if history {
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
		if asJSON {
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

// setFlags are policy set's flags.
type setFlags struct {
	precision, floor, ceiling, reason string
	maxErr                            float64
	pin                               bool
}

func newPolicySetCmd(a *app) *cobra.Command {
	var f setFlags
	c := &cobra.Command{
		Use:   "set [flags] MODEL",
		Short: "Pin precision, floor, ceiling or max_error by hand",
		Args:  argsRange(1, 1, "one MODEL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return policySet(cmd.Context(), &a.cfg, a.log, cmd.OutOrStdout(), args[0], f)
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.precision, "precision", "", "serve auto jobs at this precision from now on (the controller may move it again within floor and ceiling)")
	fs.StringVar(&f.floor, "floor", "", "the cheapest precision the controller may choose")
	fs.StringVar(&f.ceiling, "ceiling", "", "the most accurate precision the controller may choose")
	fs.Float64Var(&f.maxErr, "max-error", -1, "the model's accuracy target in its metric (relative L2 for tensor models, KL for language models); 0 restores the manifest's")
	fs.BoolVar(&f.pin, "pin", false, "pin --precision: floor = ceiling = precision, so the controller cannot move it")
	fs.StringVar(&f.reason, "reason", "", "why, for the record")
	return c
}

func policySet(ctx context.Context, cfg *config, log zerolog.Logger, out io.Writer, name string, f setFlags) error {
	parse := func(flagName, s string) (precision.Format, error) {
		if s == "" {
			return "", nil
		}
		p := precision.Format(strings.ToLower(s))
		if !p.Valid() {
			return "", usageError{fmt.Errorf("--%s %q: want one of %v", flagName, s, precision.All)}
		}
		return p, nil
	}
	p, err := parse("precision", f.precision)
	if err != nil {
		return err
	}
	fl, err := parse("floor", f.floor)
	if err != nil {
		return err
	}
	cl, err := parse("ceiling", f.ceiling)
	if err != nil {
		return err
	}
	if f.pin && p == "" {
		return usageError{errors.New("--pin needs --precision")}
	}
	if p == "" && fl == "" && cl == "" && f.maxErr < 0 {
		return usageError{errors.New("nothing to set: give --precision, --floor, --ceiling or --max-error")}
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
		if f.pin {
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
		if f.maxErr >= 0 {
			q.MaxError = f.maxErr
			changes = append(changes, fmt.Sprintf("max_error %g", f.maxErr))
		}
		q.Reason = "set by hand: " + strings.Join(changes, ", ")
		if f.reason != "" {
			q.Reason += " (" + f.reason + ")"
		}
		return nil
	})
	if err != nil {
		return err
	}
	printPolicy(out, rev, &pol, nil)
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

func newPolicyWatchCmd(a *app) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "watch [--json] [MODEL]",
		Short: `Follow policy changes ("*" or nothing: every model)`,
		Args:  argsRange(0, 1, "at most one MODEL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return policyWatch(cmd.Context(), &a.cfg, a.log, cmd.OutOrStdout(), modelOr(args, "*"), asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")
	return c
}

// modelOr is the MODEL argument, or def without one.
func modelOr(args []string, def string) string {
	if len(args) == 0 {
		return def
	}
	return args[0]
}

func policyWatch(ctx context.Context, cfg *config, log zerolog.Logger, out io.Writer, key string, asJSON bool) error {
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
				fmt.Fprintf(out, "%s\t%s\tdeleted\n", e.Created().Local().Format(time.TimeOnly), e.Key())
				continue
			}
			p, err := gearbox.DecodePolicy(e.Value())
			if err != nil {
				log.Warn().Err(err).Str("model", e.Key()).Msg("skipping policy")
				continue
			}
			if asJSON {
				b, _ := json.Marshal(p)
				fmt.Fprintf(out, "%s\n", b)
				continue
			}
			fmt.Fprintf(out, "%s\t%s\t%s\trev %d\tby %s\t%s\n", e.Created().Local().Format(time.TimeOnly), e.Key(), p.Precision, e.Revision(), p.By, p.Reason)
		}
	}
}

func newQualityCmd(a *app) *cobra.Command {
	var fromStart, asJSON bool
	c := &cobra.Command{
		Use:   "quality [flags] [MODEL]",
		Short: "Follow quality reports as a live table",
		Long:  "Follows quality reports (of MODEL, or every model) as a table until interrupted.",
		Args:  argsRange(0, 1, "at most one MODEL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runQuality(cmd.Context(), &a.cfg, a.log, cmd.OutOrStdout(), modelOr(args, "*"), fromStart, asJSON)
		},
	}
	c.Flags().BoolVar(&fromStart, "from-start", false, "print stored reports first, then follow")
	c.Flags().BoolVar(&asJSON, "json", false, "print each report as a JSON line")
	return c
}

// runQuality follows quality reports as a live table.
func runQuality(ctx context.Context, cfg *config, log zerolog.Logger, out io.Writer, name string, fromStart, asJSON bool) error {
	nc, closeNATS, err := connect(ctx, cfg, log, "gearbox-quality", false)
	if err != nil {
		return err
	}
	defer closeNATS()
	client, err := gearbox.NewClient(nc, gearbox.WithPrefix(cfg.Prefix))
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	if !asJSON {
		fmt.Fprintln(tw, "time\tmodel\tworker\trows\tmetric\tserved\terror\tcandidate\terror\tcosine\ttop1\tnon-finite\t")
		tw.Flush()
	}
	for r, err := range client.QualityReports(ctx, name, fromStart) {
		if err != nil {
			return err
		}
		if asJSON {
			b, _ := json.Marshal(r)
			fmt.Fprintf(out, "%s\n", b)
			continue
		}
		cand, cerr := "-", "-"
		nonFinite := r.ServedMetrics.NonFinite
		if c := r.CandidateMetrics; c != nil {
			cand, cerr = string(r.Candidate), fmt.Sprintf("%.3e", r.Error(c))
			nonFinite += c.NonFinite
		}
		top1 := "-"
		if t := r.ServedMetrics.Top1; t != nil {
			top1 = fmt.Sprintf("%.3f", *t)
		}
		metric := cmp.Or(r.Metric, gearbox.MetricRelL2)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%.3e\t%s\t%s\t%.6f\t%s\t%d\t\n", r.Time.Local().Format(time.TimeOnly), r.Model, r.Worker, r.Rows,
			metric, r.Served, r.Error(&r.ServedMetrics), cand, cerr, r.ServedMetrics.Cosine, top1, nonFinite)
		tw.Flush()
	}
	return nil
}

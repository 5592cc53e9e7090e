package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

// submitFlags are submit's flags.
type submitFlags struct {
	random, features, rows int
	model, precision       string
	json, wait             bool
}

func newSubmitCmd(a *app) *cobra.Command {
	var f submitFlags
	c := &cobra.Command{
		Use:   "submit [flags] [FILE]",
		Short: "Publish jobs: JSON lines from FILE or stdin, or --random N",
		Long: `Publishes jobs: one JSON job per line from FILE (or stdin), or --random N jobs
of random inputs for --model. Connects to GEARBOX_NATS_URL, or to a worker's
embedded server at GEARBOX_EMBEDDED_LISTEN.

Jobs are published without waiting for each acknowledgement (at most 256 in
flight). With --wait every job asks for its result on a reply subject, and
each result is printed as it arrives (in the order the workers finish them),
one line per job; submit then exits with status 1 when any result carries an
error, or a job was a duplicate whose result will not come.`,
		Args: argsRange(0, 1, "at most one FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSubmit(cmd.Context(), &a.cfg, a.log, f, args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := c.Flags()
	fs.IntVar(&f.random, "random", 0, "publish N jobs of random inputs instead of reading jobs")
	fs.StringVar(&f.model, "model", "", "model for --random")
	fs.IntVar(&f.features, "features", 0, "input width for --random (default: read from the model store)")
	fs.IntVar(&f.rows, "rows", 1, "rows per --random job")
	fs.StringVar(&f.precision, "precision", "auto", "precision for --random jobs")
	fs.BoolVar(&f.json, "json", false, "publish jobs as JSON (default msgpack)")
	fs.BoolVar(&f.wait, "wait", false, "wait for every job's result and print each as it arrives")
	return c
}

func runSubmit(ctx context.Context, cfg *config, log zerolog.Logger, f submitFlags, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	nc, closeNATS, err := connect(ctx, cfg, log, "gearbox-submit", false)
	if err != nil {
		return err
	}
	defer closeNATS()
	enc := gearbox.Msgpack
	if f.json {
		enc = gearbox.JSON
	}
	client, err := gearbox.NewClient(nc, gearbox.WithPrefix(cfg.Prefix), gearbox.WithEncoding(enc))
	if err != nil {
		return err
	}
	var next func() (*gearbox.Job, error)
	if f.random > 0 {
		next, err = randomJobs(ctx, client, f)
	} else {
		in := stdin
		if len(args) > 0 {
			file, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer file.Close()
			in = file
		}
		next = jobLines(in)
	}
	if err != nil {
		return err
	}
	s := &submission{nc: nc, client: client, wait: f.wait, out: stdout, errs: stderr}
	if err := s.run(ctx, next); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "published %d jobs (%d duplicates dropped by the stream)\n", s.sent, s.dups)
	switch {
	case !f.wait:
	case s.failed > 0:
		return fmt.Errorf("%d of %d results carry errors", s.failed, s.received)
	case s.dups > 0:
		return fmt.Errorf("%d jobs were duplicates: no result came for them (gearbox results shows the first ones')", s.dups)
	}
	return nil
}

// randomJobs returns a source of f.random jobs of N(0, 1) inputs.
func randomJobs(ctx context.Context, client *gearbox.Client, f submitFlags) (func() (*gearbox.Job, error), error) {
	if f.model == "" {
		return nil, usageError{errors.New("--random needs --model")}
	}
	p, err := precision.Parse(f.precision)
	if err != nil {
		return nil, err
	}
	features := f.features
	if features == 0 {
		m, err := model.Fetch(ctx, client.JetStream(), client.Subjects().ModelBucket(), f.model)
		if err != nil {
			return nil, fmt.Errorf("--features not given and model %q not in the model store: %w", f.model, err)
		}
		features = m.InputFeatures
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	run := time.Now().UnixMilli()
	n := 0
	return func() (*gearbox.Job, error) {
		if n == f.random {
			return nil, io.EOF
		}
		vals := make([]float32, f.rows*features)
		for i := range vals {
			vals[i] = float32(rng.NormFloat64())
		}
		n++
		return &gearbox.Job{ID: fmt.Sprintf("submit-%d-%d", run, n), Model: f.model, Precision: p,
			Input: gearbox.NewTensor(f.rows, features, vals)}, nil
	}, nil
}

// jobLines returns a source of the JSON jobs in r, one a line (blank lines
// skipped).
func jobLines(r io.Reader) func() (*gearbox.Job, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	return func() (*gearbox.Job, error) {
		for sc.Scan() {
			line++
			if len(sc.Bytes()) == 0 {
				continue
			}
			var j gearbox.Job
			if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			return &j, nil
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox"
	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/precision"
)

func runSubmit(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: gearbox submit [flags] [FILE]

Publishes jobs: one JSON job per line from FILE (or stdin), or --random N jobs
of random inputs for --model. Connects to GEARBOX_NATS_URL, or to a worker's
embedded server at GEARBOX_EMBEDDED_LISTEN.`)
		fs.PrintDefaults()
	}
	random := fs.Int("random", 0, "publish N jobs of random inputs instead of reading jobs")
	modelName := fs.String("model", "", "model for --random")
	features := fs.Int("features", 0, "input width for --random (default: read from the model store)")
	rows := fs.Int("rows", 1, "rows per --random job")
	prec := fs.String("precision", "auto", "precision for --random jobs")
	asJSON := fs.Bool("json", false, "publish jobs as JSON (default msgpack)")
	wait := fs.Bool("wait", false, "wait for each job's result and print it (one at a time)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, closeNATS, err := connect(ctx, cfg, log, "gearbox-submit", false)
	if err != nil {
		return err
	}
	defer closeNATS()
	enc := gearbox.Msgpack
	if *asJSON {
		enc = gearbox.JSON
	}
	client, err := gearbox.NewClient(nc, gearbox.WithPrefix(cfg.Prefix), gearbox.WithEncoding(enc))
	if err != nil {
		return err
	}

	var next func() (*gearbox.Job, error)
	if *random > 0 {
		if *modelName == "" {
			return errors.New("--random needs --model")
		}
		p, err := precision.Parse(*prec)
		if err != nil {
			return err
		}
		if *features == 0 {
			m, err := model.Fetch(ctx, client.JetStream(), client.Subjects().ModelBucket(), *modelName)
			if err != nil {
				return fmt.Errorf("--features not given and model %q not in the model store: %w", *modelName, err)
			}
			*features = m.InputFeatures
		}
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		run := time.Now().UnixMilli()
		n := 0
		next = func() (*gearbox.Job, error) {
			if n == *random {
				return nil, io.EOF
			}
			vals := make([]float32, *rows**features)
			for i := range vals {
				vals[i] = float32(rng.NormFloat64())
			}
			n++
			return &gearbox.Job{ID: fmt.Sprintf("submit-%d-%d", run, n), Model: *modelName, Precision: p,
				Input: gearbox.NewTensor(*rows, *features, vals)}, nil
		}
	} else {
		in := os.Stdin
		if fs.NArg() > 0 {
			f, err := os.Open(fs.Arg(0))
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		line := 0
		next = func() (*gearbox.Job, error) {
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

	sent, dup := 0, 0
	for {
		j, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if *wait {
			r, err := client.Do(ctx, j)
			if err != nil {
				return fmt.Errorf("job %q: %w", j.ID, err)
			}
			printResult(os.Stdout, r, false)
			sent++
			continue
		}
		ack, err := client.Submit(ctx, j)
		if err != nil {
			return fmt.Errorf("job %q: %w", j.ID, err)
		}
		sent++
		if ack.Duplicate {
			dup++
		}
	}
	fmt.Fprintf(os.Stderr, "published %d jobs (%d duplicates dropped by the stream)\n", sent, dup)
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/model"
)

const modelUsage = `usage:
  gearbox model synth --out DIR --name NAME [--dims 64,256,256,10] [--act gelu] [--seed 1]
  gearbox model push DIR        upload a model to the object store, for every worker
  gearbox model inspect [--error] DIR
                                show a model's layers and weight bytes per precision;
                                --error also measures each precision's error
`

func runModel(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, modelUsage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "synth":
		return modelSynth(args[1:])
	case "push":
		return modelPush(ctx, cfg, log, args[1:])
	case "inspect":
		return modelInspect(args[1:])
	}
	fmt.Fprintf(os.Stderr, "gearbox model: unknown subcommand %q\n\n%s", args[0], modelUsage)
	return flag.ErrHelp
}

func modelSynth(args []string) error {
	fs := flag.NewFlagSet("model synth", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write the model into (required)")
	name := fs.String("name", "", "model name (required; a subject token)")
	dims := fs.String("dims", "64,256,256,10", "input width, then each linear layer's output width")
	act := fs.String("act", "gelu", "activation between layers: gelu, relu, silu or tanh")
	seed := fs.Int64("seed", 1, "random seed (same seed, same weights)")
	dtype := fs.String("dtype", "F32", "weight storage: F32, F16 or BF16")
	norm := fs.Bool("norm", false, "add a layernorm after each hidden activation")
	softmax := fs.Bool("softmax", false, "end with a softmax")
	maxErr := fs.Float64("max-error", 0.02, "the model's accuracy target (relative L2 error)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *name == "" {
		return errors.New("--out and --name are required")
	}
	ds, err := parseDims(*dims)
	if err != nil {
		return err
	}
	m, err := model.Synth(model.SynthConfig{Name: *name, Dims: ds, Act: model.Op(*act), Seed: *seed,
		DType: strings.ToUpper(*dtype), Norm: *norm, Softmax: *softmax, MaxError: *maxErr})
	if err != nil {
		return err
	}
	if err := model.Save(m, *out); err != nil {
		return err
	}
	fmt.Printf("wrote %s: model %s, %d parameters, %d weight bytes\n", *out, m.Name, m.Params(), m.WeightBytes())
	return nil
}

func modelPush(ctx context.Context, cfg *config, log zerolog.Logger, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: gearbox model push DIR")
	}
	nc, closeNATS, err := connect(ctx, cfg, log, "gearbox-model-push", false)
	if err != nil {
		return err
	}
	defer closeNATS()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	subj, err := cfg.subjects()
	if err != nil {
		return err
	}
	m, err := model.Push(ctx, js, subj.ModelBucket(), args[0])
	if err != nil {
		return err
	}
	fmt.Printf("pushed model %s (version %s, digest %s) to bucket %s\n", m.Name, m.Version, m.Digest[:12], subj.ModelBucket())
	return nil
}

func modelInspect(args []string) error {
	fs := flag.NewFlagSet("model inspect", flag.ContinueOnError)
	measure := fs.Bool("error", false, "measure each precision's relative L2 error against a float64 forward")
	rows := fs.Int("rows", 256, "random input rows for --error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: gearbox model inspect [--error] [--rows N] DIR")
	}
	m, err := model.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Printf("model %s  version %s  digest %s\n", m.Name, m.Version, m.Digest)
	fmt.Printf("input %d → output %d features, %d parameters, %d weight bytes as stored\n",
		m.InputFeatures, m.OutputFeatures, m.Params(), m.WeightBytes())
	fmt.Printf("quality: max_error %g; precision: initial %s, ladder %v\n\n", m.Quality.MaxError, m.Precision.Initial, m.Precision.Ladder)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\top\tin\tout\tweight\tbias")
	for i, l := range m.Layers {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\n", i, l.Op, l.In, l.Out, tensorDesc(l.Weight), tensorDesc(l.Bias))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Println()
	if !*measure {
		*rows = 0
	}
	return printPrecisions(os.Stdout, m, *rows)
}

func tensorDesc(t *model.Tensor) string {
	if t == nil {
		return "-"
	}
	return fmt.Sprintf("%s %s %v", t.Name, t.DType, t.Shape)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox/model"
	"github.com/gearbox-inference/gearbox/model/lm"
)

func newModelCmd(a *app) *cobra.Command {
	return group("model", "Make, upload and examine models", newModelSynthCmd(), newModelPushCmd(a), newModelInspectCmd())
}

// synthFlags are model synth's flags.
type synthFlags struct {
	out, name, dims, act, dtype string
	seed                        int64
	norm, softmax               bool
	maxErr                      float64
}

func newModelSynthCmd() *cobra.Command {
	var f synthFlags
	c := &cobra.Command{
		Use:   "synth --out DIR --name NAME [flags]",
		Short: "Write a random multi-layer model (same seed, same weights)",
		Args:  argsRange(0, 0, "no arguments"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return modelSynth(f, cmd.OutOrStdout()) },
	}
	fs := c.Flags()
	fs.StringVar(&f.out, "out", "", "directory to write the model into (required)")
	fs.StringVar(&f.name, "name", "", "model name (required; a subject token)")
	fs.StringVar(&f.dims, "dims", "64,256,256,10", "input width, then each linear layer's output width")
	fs.StringVar(&f.act, "act", "gelu", "activation between layers: gelu, relu, silu or tanh")
	fs.Int64Var(&f.seed, "seed", 1, "random seed (same seed, same weights)")
	fs.StringVar(&f.dtype, "dtype", "F32", "weight storage: F32, F16 or BF16")
	fs.BoolVar(&f.norm, "norm", false, "add a layernorm after each hidden activation")
	fs.BoolVar(&f.softmax, "softmax", false, "end with a softmax")
	fs.Float64Var(&f.maxErr, "max-error", 0.02, "the model's accuracy target (relative L2 error)")
	return c
}

func modelSynth(f synthFlags, out io.Writer) error {
	if f.out == "" || f.name == "" {
		return usageError{errors.New("--out and --name are required")}
	}
	ds, err := parseDims(f.dims)
	if err != nil {
		return err
	}
	m, err := model.Synth(model.SynthConfig{Name: f.name, Dims: ds, Act: model.Op(f.act), Seed: f.seed,
		DType: strings.ToUpper(f.dtype), Norm: f.norm, Softmax: f.softmax, MaxError: f.maxErr})
	if err != nil {
		return err
	}
	if err := model.Save(m, f.out); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "wrote %s: model %s, %d parameters, %d weight bytes\n", f.out, m.Name, m.Params(), m.WeightBytes())
	return err
}

func newModelPushCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "push DIR",
		Short: "Upload a model to the object store, for every worker",
		Args:  argsRange(1, 1, "one model DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return modelPush(cmd.Context(), &a.cfg, a.log, args[0], cmd.OutOrStdout())
		},
	}
}

func modelPush(ctx context.Context, cfg *config, log zerolog.Logger, dir string, out io.Writer) error {
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
	if model.IsCausalLM(dir) {
		m, err := lm.Push(ctx, js, subj.ModelBucket(), dir)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "pushed language model %s (version %s, digest %s) to bucket %s\n", m.Name, m.Version, m.Digest[:12], subj.ModelBucket())
		return err
	}
	m, err := model.Push(ctx, js, subj.ModelBucket(), dir)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "pushed model %s (version %s, digest %s) to bucket %s\n", m.Name, m.Version, m.Digest[:12], subj.ModelBucket())
	return err
}

func newModelInspectCmd() *cobra.Command {
	var measure bool
	var rows, tokens int
	c := &cobra.Command{
		Use:   "inspect [--error] [--rows N] [--tokens N] DIR",
		Short: "Show a model's layers and weight bytes per precision (--error: each precision's error)",
		Long: `Shows the model in DIR: a tensor model's layers and weight bytes per precision,
or a language-model checkpoint's architecture, size and policy. --error measures
each precision on the CPU backend: a tensor model's relative L2 error against a
float64 forward over --rows random rows; a language model's mean KL divergence,
top-1 agreement and logits' relative L2 against fp32, teacher-forced over
--tokens tokens of a built-in Go and English text (random tokens without a
tokenizer).`,
		Args: argsRange(1, 1, "one model DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !measure {
				rows, tokens = 0, 0
			}
			if model.IsCausalLM(args[0]) {
				return lmInspect(args[0], tokens, cmd.OutOrStdout())
			}
			return modelInspect(args[0], rows, cmd.OutOrStdout())
		},
	}
	c.Flags().BoolVar(&measure, "error", false, "measure each precision's error (see above)")
	c.Flags().IntVar(&rows, "rows", 256, "random input rows for --error (tensor models)")
	c.Flags().IntVar(&tokens, "tokens", 64, "tokens for --error (language models)")
	return c
}

// modelInspect describes the model in dir and, with rows > 0, measures
// each precision's error on that many rows.
func modelInspect(dir string, rows int, out io.Writer) error {
	m, err := model.Load(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "model %s  version %s  digest %s\n", m.Name, m.Version, m.Digest)
	fmt.Fprintf(out, "input %d → output %d features, %d parameters, %d weight bytes as stored\n",
		m.InputFeatures, m.OutputFeatures, m.Params(), m.WeightBytes())
	fmt.Fprintf(out, "quality: max_error %g; precision: initial %s, ladder %v\n\n", m.Quality.MaxError, m.Precision.Initial, m.Precision.Ladder)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\top\tin\tout\tweight\tbias")
	for i, l := range m.Layers {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\n", i, l.Op, l.In, l.Out, tensorDesc(l.Weight), tensorDesc(l.Bias))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	return printPrecisions(out, m, rows)
}

func tensorDesc(t *model.Tensor) string {
	if t == nil {
		return "-"
	}
	return fmt.Sprintf("%s %s %v", t.Name, t.DType, t.Shape)
}

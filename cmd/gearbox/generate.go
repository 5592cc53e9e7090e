package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox/engine"
	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/model/lm"
	"github.com/gearbox-inference/gearbox/model/tokenizer"
	"github.com/gearbox-inference/gearbox/precision"
)

// generateFlags are generate's flags. Sampling flags left at their
// defaults (negative) take the model's generation_config.json.
type generateFlags struct {
	model, prompt, precision, device string
	maxTokens, topK                  int
	temperature, topP                float64
	seed                             uint64
}

func newGenerateCmd(a *app) *cobra.Command {
	var f generateFlags
	c := &cobra.Command{
		Use:   "generate --model DIR --prompt TEXT [flags]",
		Short: "Continue a prompt with a language model, locally, streaming the text",
		Long: `Loads the language-model checkpoint in DIR (a Hugging Face directory: config.json,
safetensors, tokenizer.json), continues TEXT on the backend (--device, default
GEARBOX_DEVICE) at --precision, and streams the text to stdout as it is
generated. At the end it prints to stderr the prompt and generation speed in
tokens/s, the precision and device it ran on, and why it stopped. Sampling
flags not given take the model's generation_config.json (greedy without one).
No NATS is involved.`,
		Args: argsRange(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.device == "" {
				f.device = a.cfg.Device
			}
			return runGenerate(cmd.Context(), f, a.log, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.model, "model", "", "language-model checkpoint directory (required)")
	fs.StringVar(&f.prompt, "prompt", "", "the text to continue (required)")
	fs.IntVar(&f.maxTokens, "max-tokens", 128, "most tokens to generate")
	fs.Float64Var(&f.temperature, "temperature", -1, "sampling temperature; 0 is greedy (default: the model's)")
	fs.Float64Var(&f.topP, "top-p", -1, "nucleus sampling mass in (0, 1] (default: the model's)")
	fs.IntVar(&f.topK, "top-k", -1, "keep the k most likely tokens; 0 is off (default: the model's)")
	fs.Uint64Var(&f.seed, "seed", 0, "sampling seed (same seed, same text)")
	fs.StringVar(&f.precision, "precision", "auto", "fp32, tf32, bf16, fp16, fp8, fp4, or auto (the model's initial precision)")
	fs.StringVar(&f.device, "device", "", "auto, cpu or cuda:N (default GEARBOX_DEVICE)")
	return c
}

func runGenerate(ctx context.Context, f generateFlags, log zerolog.Logger, stdout, stderr io.Writer) error {
	if f.model == "" || f.prompt == "" {
		return usageError{errors.New("--model and --prompt are required")}
	}
	if f.maxTokens < 1 {
		return usageError{fmt.Errorf("--max-tokens %d: want at least 1", f.maxTokens)}
	}
	m, err := lm.Load(f.model)
	if err != nil {
		return err
	}
	if m.Tokenizer == nil {
		return fmt.Errorf("%s: the checkpoint has no tokenizer.json: generate needs one", f.model)
	}
	tok, err := tokenizer.ParseFiles(tokenizer.Files{Tokenizer: m.Tokenizer, Config: m.TokenizerConfig})
	if err != nil {
		return fmt.Errorf("%s: %w", f.model, err)
	}
	s, err := generateSampling(f, m.Generation)
	if err != nil {
		return usageError{err}
	}
	p, err := precision.Parse(f.precision)
	if err != nil {
		return usageError{fmt.Errorf("--precision: %w", err)}
	}
	if p == precision.Auto {
		p = m.Precision.Initial
	}
	ids := tok.Encode(f.prompt, true)
	prompt := make([]int32, len(ids))
	for i, id := range ids {
		prompt[i] = int32(id)
	}
	room := m.Config.MaxPositions - len(prompt)
	if room < f.maxTokens {
		return fmt.Errorf("the prompt is %d tokens and --max-tokens %d: model %s's context is %d", len(prompt), f.maxTokens, m.Name, m.Config.MaxPositions)
	}

	b, err := openBackend(f.device, log)
	if err != nil {
		return err
	}
	defer b.Close()
	lmb, ok := b.(kernels.LM)
	if !ok {
		return fmt.Errorf("backend %s runs no language models", b.Name())
	}
	if !kernels.Supports(b, p) {
		return fmt.Errorf("backend %s does not run %s", b.Name(), p)
	}
	start := time.Now()
	if err := kernels.WarmLM(ctx, lmb, m, p); err != nil {
		return err
	}
	ready := time.Since(start)
	blocks := (len(prompt)+f.maxTokens+kernels.KVBlockSize-1)/kernels.KVBlockSize + 1
	eng, err := engine.New(lmb, m, p, blocks, engine.Config{})
	if err != nil {
		return err
	}
	defer eng.Close()

	eos := m.Generation.EOS
	for _, id := range tok.StopIDs() {
		eos = append(eos, int32(id))
	}
	dec := tok.NewDecoder(false)
	var writeErr error
	done := make(chan *engine.Outcome, 1)
	q := &engine.Seq{
		Task: engine.Generate, Prompt: prompt, MaxTokens: f.maxTokens, Sampling: s, EOS: eos,
		Token: func(t engine.Token) bool {
			text, err := dec.Add(int(t.ID))
			if err == nil && text != "" {
				_, err = io.WriteString(stdout, text)
			}
			if err != nil {
				writeErr = err
				return true
			}
			return false
		},
		Done: func(o *engine.Outcome) { done <- o },
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- eng.Run(runCtx) }()
	if err := eng.Add(ctx, q); err != nil {
		return err
	}
	var o *engine.Outcome
	select {
	case o = <-done:
	case err := <-ran:
		return fmt.Errorf("generate: the engine stopped: %w", err)
	}
	if o.Err != nil {
		return o.Err
	}
	if writeErr != nil {
		return writeErr
	}
	if _, err := io.WriteString(stdout, dec.Flush()+"\n"); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s on %s (weights ready in %s): %s\n", p, b.Name(), ready.Round(time.Millisecond), generateSummary(o, len(prompt)))
	return nil
}

// generateSampling is the sampling of f over the model's defaults g.
func generateSampling(f generateFlags, g lm.Generation) (kernels.Sampling, error) {
	s := kernels.Sampling{Seed: f.seed}
	if g.DoSample {
		s.Temperature, s.TopK, s.TopP = float32(g.Temperature), g.TopK, float32(g.TopP)
	}
	if f.temperature >= 0 {
		s.Temperature = float32(f.temperature)
	}
	if f.topK >= 0 {
		s.TopK = f.topK
	}
	if f.topP >= 0 {
		if f.topP == 0 || f.topP > 1 {
			return s, fmt.Errorf("--top-p %g: want a value in (0, 1]", f.topP)
		}
		s.TopP = float32(f.topP)
	}
	if math.IsInf(float64(s.Temperature), 0) {
		return s, fmt.Errorf("--temperature %g: want a finite value", f.temperature)
	}
	return s, nil
}

// generateSummary is how o went: tokens and speed of the prompt (added to
// first token) and of the generation (first token to the end), and why it
// stopped.
func generateSummary(o *engine.Outcome, promptTokens int) string {
	prefill := o.FirstToken.Sub(o.Added)
	gen := o.Ended.Sub(o.FirstToken)
	rate := func(n int, d time.Duration) string {
		if n <= 0 || d <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f tok/s", float64(n)/d.Seconds())
	}
	n := len(o.Tokens)
	return fmt.Sprintf("prompt %d tokens in %s (%s); generated %d tokens in %s (%s); finish %s",
		promptTokens, prefill.Round(time.Microsecond), rate(promptTokens, prefill),
		n, gen.Round(time.Microsecond), rate(n-1, gen), o.Reason)
}

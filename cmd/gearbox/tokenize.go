package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gearbox-inference/gearbox/model/tokenizer"
)

// tokenizeFlags are tokenize's flags.
type tokenizeFlags struct {
	model                 string
	decode, special, json bool
}

func newTokenizeCmd() *cobra.Command {
	var f tokenizeFlags
	c := &cobra.Command{
		Use:   "tokenize --model DIR [--decode]",
		Short: "Text to token ids (or ids to text) with a checkpoint's tokenizer, line by line",
		Long: `Reads stdin line by line and writes one output line per input line, with the
tokenizer.json of the checkpoint in DIR: the token ids of each line, space-
separated (the line's end is not part of it), or with --decode the text of
each line of ids (space- or comma-separated). --special adds the tokens the
tokenizer adds around a text (Llama 3's <|begin_of_text|>) and, with --decode,
keeps special tokens in the text. Decoded text that holds a line break breaks
the line correspondence: --json writes each output as JSON (an array of ids,
or a string).`,
		Args: argsRange(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenize(f, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.model, "model", "", "checkpoint directory holding tokenizer.json (required)")
	fs.BoolVar(&f.decode, "decode", false, "read token ids, write text")
	fs.BoolVar(&f.special, "special", false, "add special tokens when encoding; keep them when decoding")
	fs.BoolVar(&f.json, "json", false, "write each output line as JSON")
	return c
}

func runTokenize(f tokenizeFlags, stdin io.Reader, stdout io.Writer) error {
	if f.model == "" {
		return usageError{errors.New("--model is required")}
	}
	tok, err := tokenizer.Load(f.model)
	if err != nil {
		return err
	}
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 64<<10), 64<<20)
	out := bufio.NewWriter(stdout)
	for n := 1; in.Scan(); n++ {
		var line string
		if f.decode {
			ids, err := parseIDs(in.Text())
			if err != nil {
				return fmt.Errorf("stdin line %d: %w", n, err)
			}
			if line, err = tok.Decode(ids, !f.special); err != nil {
				return fmt.Errorf("stdin line %d: %w", n, err)
			}
			if f.json {
				b, _ := json.Marshal(line)
				line = string(b)
			}
		} else {
			ids := tok.Encode(in.Text(), f.special)
			if f.json {
				if ids == nil {
					ids = []int{}
				}
				b, _ := json.Marshal(ids)
				line = string(b)
			} else {
				s := make([]string, len(ids))
				for i, id := range ids {
					s[i] = strconv.Itoa(id)
				}
				line = strings.Join(s, " ")
			}
		}
		if _, err := fmt.Fprintln(out, line); err != nil {
			return err
		}
	}
	if err := in.Err(); err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	return out.Flush()
}

// parseIDs reads token ids separated by spaces or commas.
func parseIDs(s string) ([]int, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
	ids := make([]int, len(fields))
	for i, f := range fields {
		id, err := strconv.Atoi(f)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("token id %q: want a non-negative integer", f)
		}
		ids[i] = id
	}
	return ids, nil
}

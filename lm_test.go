package gearbox_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/gearbox-inference/gearbox"
)

func lmJob() map[string]any {
	return map[string]any{"id": "g1", "model": "coder", "prompt": "func main() {", "max_tokens": 16,
		"temperature": 0.7, "top_p": 0.9, "top_k": 40, "seed": 7, "stop": []string{"\n}"}, "logprobs": 2, "stream": true}
}

// TestLMJobRoundTrip: a language-model job's fields survive both encodings,
// and absent sampling fields stay absent (nil), so the model's defaults
// apply.
func TestLMJobRoundTrip(t *testing.T) {
	seven, sixteen, temp, topP, topK := uint64(7), 16, 0.7, 0.9, 40
	want := gearbox.LMRequest{Prompt: "func main() {", MaxTokens: &sixteen, Temperature: &temp, TopP: &topP, TopK: &topK,
		Seed: &seven, Stop: []string{"\n}"}, Logprobs: 2, Stream: true}
	for _, enc := range []gearbox.Encoding{gearbox.Msgpack, gearbox.JSON} {
		data, err := enc.Marshal(lmJob())
		if err != nil {
			t.Fatal(err)
		}
		j, err := gearbox.DecodeJob(data, enc)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if err := j.Validate(); err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if !reflect.DeepEqual(j.LMRequest, want) {
			t.Errorf("%s: got %+v; want %+v", enc, j.LMRequest, want)
		}
		// Marshalled back, it decodes to the same.
		again, _ := enc.Marshal(j)
		j2, err := gearbox.DecodeJob(again, enc)
		if err != nil || !reflect.DeepEqual(j2.LMRequest, want) {
			t.Errorf("%s: re-decoded %+v (%v)", enc, j2, err)
		}
	}
	j, err := gearbox.DecodeJob([]byte(`{"id":"g2","model":"coder","prompt_tokens":[1,2,3]}`), gearbox.JSON)
	if err != nil || j.Validate() != nil {
		t.Fatalf("%v %v", err, j.Validate())
	}
	if j.Temperature != nil || j.MaxTokens != nil || j.Seed != nil || !reflect.DeepEqual(j.PromptTokens, []int32{1, 2, 3}) {
		t.Errorf("absent fields decoded as %+v", j.LMRequest)
	}
}

// TestLMJobBadParameters: each bad parameter is a bad_request naming its
// field, in both encodings.
func TestLMJobBadParameters(t *testing.T) {
	cases := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"negative temperature", func(m map[string]any) { m["temperature"] = -1 }, "temperature -1 must be"},
		{"top_p zero", func(m map[string]any) { m["top_p"] = 0 }, "top_p 0 must be in (0, 1]"},
		{"top_p above 1", func(m map[string]any) { m["top_p"] = 1.5 }, "top_p 1.5 must be in (0, 1]"},
		{"max_tokens zero", func(m map[string]any) { m["max_tokens"] = 0 }, "max_tokens 0 must be ≥ 1"},
		{"negative top_k", func(m map[string]any) { m["top_k"] = -3 }, "top_k -3"},
		{"both prompts", func(m map[string]any) { m["prompt_tokens"] = []int{1} }, "exactly one of prompt and prompt_tokens"},
		{"neither prompt", func(m map[string]any) { delete(m, "prompt"); m["task"] = "generate" }, "exactly one of prompt and prompt_tokens"},
		{"negative token", func(m map[string]any) { delete(m, "prompt"); m["prompt_tokens"] = []int{1, -2} }, "prompt_tokens[1] = -2"},
		{"unknown task", func(m map[string]any) { m["task"] = "translate" }, `task "translate" is not one of`},
		{"input and prompt", func(m map[string]any) { m["input"] = map[string]any{"values": []float64{1}} }, "both input"},
		{"too many logprobs", func(m map[string]any) { m["logprobs"] = 21 }, "logprobs 21 must be 0 to 20"},
		{"too many stops", func(m map[string]any) { m["stop"] = strings.Split(strings.Repeat("x", 17), "") }, "stop has 17 strings"},
		{"stream an embed", func(m map[string]any) { m["task"] = "embed" }, "stream applies to generate jobs only"},
		{"seed a string", func(m map[string]any) { m["seed"] = "x" }, "seed: want an integer"},
	}
	for _, c := range cases {
		for _, enc := range []gearbox.Encoding{gearbox.Msgpack, gearbox.JSON} {
			m := lmJob()
			c.edit(m)
			data, err := enc.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			j, err := gearbox.DecodeJob(data, enc)
			if err == nil {
				err = j.Validate()
			}
			var e *gearbox.Error
			if !errors.As(err, &e) || e.Code != gearbox.CodeBadRequest || !strings.Contains(e.Message, c.want) {
				t.Errorf("%s (%s): %v; want a bad_request mentioning %q", c.name, enc, err, c.want)
			}
		}
	}
	// Invalid UTF-8: a JSON payload as a whole, a msgpack prompt.
	if _, err := gearbox.DecodeJob([]byte("{\"id\":\"u\",\"prompt\":\"a\xffb\"}"), gearbox.JSON); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("JSON with invalid UTF-8: %v", err)
	}
	m := lmJob()
	m["prompt"] = "a\xffb"
	data, _ := gearbox.Msgpack.Marshal(m)
	if j, err := gearbox.DecodeJob(data, gearbox.Msgpack); err != nil || j.Validate() == nil || !strings.Contains(j.Validate().Error(), "prompt is not valid UTF-8") {
		t.Errorf("msgpack prompt with invalid UTF-8: %v, %v", err, j.Validate())
	}
}

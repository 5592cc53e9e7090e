package model

import (
	"io/fs"
	"os"
	"path"
)

// ConfigFile is the Hugging Face config.json that marks a model directory
// as a causal language model, loaded by package model/lm rather than by
// Load.
const ConfigFile = "config.json"

// IsCausalLM reports whether directory dir holds a causal language model: a
// Hugging Face checkpoint, recognised by its config.json. LoadAll skips such
// directories; lm.Load loads them.
func IsCausalLM(dir string) bool {
	return IsCausalLMFS(os.DirFS(dir), ".")
}

// IsCausalLMFS is IsCausalLM for the directory dir of fsys.
func IsCausalLMFS(fsys fs.FS, dir string) bool {
	fi, err := fs.Stat(fsys, path.Join(dir, ConfigFile))
	return err == nil && !fi.IsDir()
}

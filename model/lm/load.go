package lm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gearbox-inference/gearbox/model"
)

// The files of a checkpoint directory besides config.json
// (model.ConfigFile), generation_config.json (GenerationFile) and model.json
// (model.ManifestFile).
const (
	// WeightsFile holds all the weights of an unsharded checkpoint. When
	// present it is read, and an index beside it ignored, as transformers
	// does.
	WeightsFile = model.WeightsFile
	// IndexFile maps each tensor to its shard in a sharded checkpoint.
	IndexFile = "model.safetensors.index.json"
	// TokenizerFile and TokenizerConfigFile are read as bytes, for the
	// tokenizer.
	TokenizerFile       = "tokenizer.json"
	TokenizerConfigFile = "tokenizer_config.json"
)

// Limits on the small files of a checkpoint, in bytes.
const (
	MaxIndexSize     = 16 << 20
	MaxTokenizerSize = 64 << 20
)

// Load loads and validates the causal language model in directory dir: a
// Hugging Face checkpoint (see docs/models-lm.md). Its name is model.json's,
// or else dir's base name, which must then be a valid model name.
//
// The weights are read once into memory and kept as stored (see
// model.RawTensor): host memory peaks at about the size of the checkpoint.
// Errors name the file and the field or tensor at fault, and wrap
// ErrInvalidConfig, ErrUnsupported, ErrTensorMismatch,
// model.ErrInvalidManifest, model.ErrInvalidSafetensors or (for a missing
// file) fs.ErrNotExist.
func Load(dir string) (*Model, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lm: %s: %w", dir, err)
	}
	l := &loader{fsys: os.DirFS(abs), dir: ".", base: filepath.Base(abs),
		display: func(file string) string { return filepath.Join(dir, file) }}
	return l.load()
}

// LoadFS is Load for the checkpoint in directory dir of fsys; its default
// name is path.Base(dir).
func LoadFS(fsys fs.FS, dir string) (*Model, error) {
	return loadMem(fsys, nil, dir)
}

// loadMem is LoadFS whose weight files, where mem holds them by path, are
// those bytes themselves (the model's tensors slice them): Fetch's
// objects, already in memory, are not copied again.
func loadMem(fsys fs.FS, mem map[string][]byte, dir string) (*Model, error) {
	l := &loader{fsys: fsys, mem: mem, dir: dir, base: path.Base(dir),
		display: func(file string) string { return path.Join(dir, file) }}
	return l.load()
}

// loader loads one checkpoint.
type loader struct {
	fsys    fs.FS
	mem     map[string][]byte // weight files held in memory, by path in fsys
	dir     string
	base    string                   // the directory's name: the default model name
	display func(file string) string // a file's name in errors
	digest  hash.Hash
}

func (l *loader) load() (*Model, error) {
	l.digest = sha256.New()
	cfgBytes, err := l.read(model.ConfigFile, MaxConfigSize)
	if err != nil {
		return nil, err
	}
	l.digest.Write(cfgBytes)
	cfg, err := ParseConfig(cfgBytes)
	if err != nil {
		return nil, l.errorf(model.ConfigFile, err)
	}
	m := &Model{Config: *cfg, Generation: DefaultGeneration(cfg)}

	if data, err := l.readOptional(GenerationFile, MaxConfigSize); err != nil {
		return nil, err
	} else if data != nil {
		if m.Generation, err = ParseGeneration(data, cfg); err != nil {
			return nil, l.errorf(GenerationFile, err)
		}
	}
	if err := l.manifest(m); err != nil {
		return nil, err
	}
	tensors, missing, err := l.weights()
	if err != nil {
		return nil, err
	}
	if m.Weights, err = bindWeights(cfg, tensors, missing); err != nil {
		return nil, fmt.Errorf("lm: %w", err)
	}
	if m.Tokenizer, err = l.readOptional(TokenizerFile, MaxTokenizerSize); err != nil {
		return nil, err
	}
	if m.TokenizerConfig, err = l.readOptional(TokenizerConfigFile, MaxTokenizerSize); err != nil {
		return nil, err
	}
	m.Digest = hex.EncodeToString(l.digest.Sum(nil))
	return m, nil
}

// manifest reads the optional model.json into m's name, version, quality
// and precision policy, defaulting each.
func (l *loader) manifest(m *Model) error {
	mf := &Manifest{}
	data, err := l.readOptional(model.ManifestFile, model.MaxManifestSize)
	if err != nil {
		return err
	}
	if data != nil {
		if mf, err = ParseManifest(data); err != nil {
			return l.errorf(model.ManifestFile, err)
		}
	}
	m.Name, m.Version = mf.Name, mf.Version
	if m.Name == "" {
		if !model.ValidName(l.base) {
			return l.errorf(model.ManifestFile, mfErrorf("no name given, and the directory's name %q is not a valid model name (1 to 64 of a-z, A-Z, 0-9, _ and -)", l.base))
		}
		m.Name = l.base
	}
	if m.Quality, err = mf.quality(); err != nil {
		return l.errorf(model.ManifestFile, err)
	}
	if m.Precision, err = mf.Precision.Config(); err != nil {
		return l.errorf(model.ManifestFile, err)
	}
	return nil
}

// weights reads the checkpoint's weight files, in name order, into the
// digest, and returns their tensors by name and where a missing tensor
// was looked for.
func (l *loader) weights() (map[string]located, string, error) {
	files := []string{WeightsFile}
	var index map[string]string // tensor → shard; nil when unsharded
	if _, err := fs.Stat(l.fsys, path.Join(l.dir, WeightsFile)); errors.Is(err, fs.ErrNotExist) {
		data, err := l.readOptional(IndexFile, MaxIndexSize)
		if err != nil {
			return nil, "", err
		}
		if data == nil {
			return nil, "", fmt.Errorf("lm: %s: %w: no %s or %s (only safetensors checkpoints are read)",
				l.display("."), fs.ErrNotExist, WeightsFile, IndexFile)
		}
		if index, files, err = parseIndex(data); err != nil {
			return nil, "", l.errorf(IndexFile, err)
		}
	}
	tensors := make(map[string]located)
	for _, file := range files {
		data, err := l.readAll(file)
		if err != nil {
			return nil, "", err
		}
		// The digest (one core) is taken while the parse checks the
		// weights (the others).
		hashed := make(chan struct{})
		go func() {
			defer close(hashed)
			l.digest.Write(data)
		}()
		raw, _, err := model.ParseSafetensors(data)
		<-hashed
		if err != nil {
			return nil, "", l.errorf(file, err)
		}
		for _, t := range raw {
			// A tensor in two shards is in one the index does not
			// put it in: this check catches it too.
			if index != nil && index[t.Name] != file {
				where := "does not list it"
				if s, ok := index[t.Name]; ok {
					where = "puts it in " + s
				}
				return nil, "", fmt.Errorf("lm: %s: %w: tensor %q is in this shard, but %s %s", l.display(file), ErrTensorMismatch, t.Name, IndexFile, where)
			}
			tensors[t.Name] = located{t: t, file: l.display(file)}
		}
	}
	if index == nil {
		return tensors, WeightsFile, nil
	}
	for _, name := range slices.Sorted(maps.Keys(index)) {
		if _, ok := tensors[name]; !ok {
			return nil, "", fmt.Errorf("lm: %s: %w: tensor %q is not in %s, where %s puts it",
				l.display(index[name]), ErrTensorMismatch, name, index[name], IndexFile)
		}
	}
	return tensors, "the shards of " + IndexFile, nil
}

// parseIndex decodes model.safetensors.index.json: its weight_map, and the
// shards it names, sorted. Shard names must be plain file names ending in
// .safetensors. Errors wrap model.ErrInvalidSafetensors.
func parseIndex(data []byte) (map[string]string, []string, error) {
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, nil, fmt.Errorf("%w: index is not valid JSON: %v", model.ErrInvalidSafetensors, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("%w: index has no weight_map", model.ErrInvalidSafetensors)
	}
	var files []string
	for _, tensor := range slices.Sorted(maps.Keys(idx.WeightMap)) {
		f := idx.WeightMap[tensor]
		if f == "." || f == ".." || strings.ContainsAny(f, `/\`) || !strings.HasSuffix(f, ".safetensors") || f == IndexFile {
			return nil, nil, fmt.Errorf("%w: weight_map[%q] %q is not the name of a .safetensors file in the checkpoint's directory", model.ErrInvalidSafetensors, tensor, f)
		}
		if !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	slices.Sort(files)
	return idx.WeightMap, files, nil
}

// read reads file, no further than one byte past limit, and fails if it
// is larger than limit.
func (l *loader) read(file string, limit int64) ([]byte, error) {
	f, err := l.fsys.Open(path.Join(l.dir, file))
	if err != nil {
		return nil, l.errorf(file, unwrapPath(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, l.errorf(file, unwrapPath(err))
	}
	if int64(len(data)) > limit {
		return nil, l.errorf(file, fmt.Errorf("over the limit of %d bytes", limit))
	}
	return data, nil
}

// readOptional is read, returning nil (and no error) when file does not
// exist.
func (l *loader) readOptional(file string, limit int64) ([]byte, error) {
	data, err := l.read(file, limit)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// readAll reads a weights file whole into one buffer of its size; a file
// of l.mem is returned as it is, not copied.
func (l *loader) readAll(file string) ([]byte, error) {
	if data, ok := l.mem[path.Join(l.dir, file)]; ok {
		return data, nil
	}
	f, err := l.fsys.Open(path.Join(l.dir, file))
	if err != nil {
		return nil, l.errorf(file, unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, l.errorf(file, unwrapPath(err))
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, l.errorf(file, fmt.Errorf("reading %d bytes: %w", fi.Size(), unwrapPath(err)))
	}
	if n, _ := f.Read(make([]byte, 1)); n > 0 {
		return nil, l.errorf(file, errors.New("the file grew while it was read"))
	}
	return data, nil
}

// errorf prefixes err with the package and file.
func (l *loader) errorf(file string, err error) error {
	return fmt.Errorf("lm: %s: %w", l.display(file), err)
}

// unwrapPath drops the *fs.PathError around err, whose path is relative to
// the fs.FS and so less useful than the name errorf adds.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// LoadAll loads every causal language model under root: each subdirectory
// (or link to one) holding config.json (model.IsCausalLM), skipping names
// that start with ".". The tensor models beside them are model.LoadAll's.
// It returns the models that loaded, sorted by name, and an error joining
// one error per directory that failed; two directories giving one name are
// an error, and neither is returned.
func LoadAll(root string) ([]*Model, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("lm: %w", err)
	}
	var (
		errs   []error
		byName = map[string][]*Model{}
		dirOf  = map[*Model]string{}
	)
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if strings.HasPrefix(e.Name(), ".") || !model.IsCausalLM(dir) {
			continue
		}
		m, err := Load(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		byName[m.Name] = append(byName[m.Name], m)
		dirOf[m] = dir
	}
	var out []*Model
	for name, ms := range byName {
		if len(ms) > 1 {
			var dirs []string
			for _, m := range ms {
				dirs = append(dirs, dirOf[m])
			}
			slices.Sort(dirs)
			errs = append(errs, fmt.Errorf("lm: %s: %w %q", strings.Join(dirs, ", "), model.ErrDuplicateModel, name))
			continue
		}
		out = append(out, ms[0])
	}
	slices.SortFunc(out, func(a, b *Model) int { return strings.Compare(a.Name, b.Name) })
	return out, errors.Join(errs...)
}

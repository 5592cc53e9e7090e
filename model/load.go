package model

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// The files of a model directory.
const (
	ManifestFile = "model.json"
	WeightsFile  = "model.safetensors"
)

// Load loads and validates the model in directory dir (dir/model.json and
// dir/model.safetensors). Errors name the file, and where it applies the
// layer (by index and op) and the tensor at fault; validation errors wrap
// ErrInvalidManifest, ErrInvalidSafetensors or ErrTensorMismatch, and a
// missing file wraps fs.ErrNotExist.
func Load(dir string) (*Model, error) {
	dir = cmp.Or(dir, ".")
	return loadFS(os.DirFS(dir), ".", func(file string) string { return filepath.Join(dir, file) })
}

// LoadFS is Load for the model in directory dir of fsys.
func LoadFS(fsys fs.FS, dir string) (*Model, error) {
	return loadFS(fsys, dir, func(file string) string { return path.Join(dir, file) })
}

// LoadAll loads every model under root: each subdirectory (or symbolic link
// to one) that holds a model.json. Subdirectories whose names start with "."
// are skipped, as are files, subdirectories without model.json, and causal
// language models (IsCausalLM: a config.json beside it), which package
// model/lm loads.
//
// It returns the models that loaded, sorted by name, and an error joining
// one error per directory that failed, each naming its directory. Two
// directories whose manifests give the same name are an error wrapping
// ErrDuplicateModel, and neither is returned.
func LoadAll(root string) ([]*Model, error) {
	root = cmp.Or(root, ".")
	return loadAllFS(os.DirFS(root), ".", func(elem ...string) string {
		return filepath.Join(append([]string{root}, elem...)...)
	})
}

// LoadAllFS is LoadAll for the directory root of fsys.
func LoadAllFS(fsys fs.FS, root string) ([]*Model, error) {
	return loadAllFS(fsys, root, func(elem ...string) string {
		return path.Join(append([]string{root}, elem...)...)
	})
}

func loadAllFS(fsys fs.FS, root string, display func(elem ...string) string) ([]*Model, error) {
	entries, err := fs.ReadDir(fsys, root)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", display(), unwrapPath(err))
	}
	var (
		errs   []error
		models []*Model
		dirOf  = make(map[*Model]string)
		byName = make(map[string][]*Model)
	)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		sub := path.Join(root, e.Name())
		if fi, err := fs.Stat(fsys, sub); err != nil || !fi.IsDir() {
			continue // a file, or a broken link
		}
		if _, err := fs.Stat(fsys, path.Join(sub, ManifestFile)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if IsCausalLMFS(fsys, sub) {
			continue
		}
		m, err := loadFS(fsys, sub, func(file string) string { return display(e.Name(), file) })
		if err != nil {
			errs = append(errs, err)
			continue
		}
		models = append(models, m)
		dirOf[m] = display(e.Name())
		byName[m.Name] = append(byName[m.Name], m)
	}
	models = slices.DeleteFunc(models, func(m *Model) bool { return len(byName[m.Name]) > 1 })
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		if ms := byName[name]; len(ms) > 1 {
			dirs := make([]string, len(ms))
			for i, m := range ms {
				dirs[i] = dirOf[m]
			}
			errs = append(errs, fmt.Errorf("model: %w %q in %s", ErrDuplicateModel, name, strings.Join(dirs, " and ")))
		}
	}
	slices.SortFunc(models, func(a, b *Model) int { return strings.Compare(a.Name, b.Name) })
	return models, errors.Join(errs...)
}

func loadFS(fsys fs.FS, dir string, display func(file string) string) (*Model, error) {
	manifest, weights, err := readFiles(fsys, dir, display)
	if err != nil {
		return nil, err
	}
	return decode(display(ManifestFile), manifest, display(WeightsFile), weights)
}

// readFiles reads the two files of the model in dir, the manifest no further
// than one byte past MaxManifestSize (so that ParseManifest rejects it).
func readFiles(fsys fs.FS, dir string, display func(file string) string) (manifest, weights []byte, err error) {
	f, err := fsys.Open(path.Join(dir, ManifestFile))
	if err != nil {
		return nil, nil, fmt.Errorf("model: %s: %w", display(ManifestFile), unwrapPath(err))
	}
	manifest, err = io.ReadAll(io.LimitReader(f, MaxManifestSize+1))
	f.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("model: %s: %w", display(ManifestFile), unwrapPath(err))
	}
	weights, err = fs.ReadFile(fsys, path.Join(dir, WeightsFile))
	if err != nil {
		return nil, nil, fmt.Errorf("model: %s: %w", display(WeightsFile), unwrapPath(err))
	}
	return manifest, weights, nil
}

// unwrapPath drops the *fs.PathError around err, whose path is relative to
// the fs.FS and so less useful than the name the caller adds.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// decode parses and validates a model from the bytes of its two files;
// manifestName and weightsName name them in errors.
func decode(manifestName string, manifest []byte, weightsName string, weights []byte) (*Model, error) {
	mf, err := ParseManifest(manifest)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", manifestName, err)
	}
	tensors, _, err := ReadSafetensors(weights)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", weightsName, err)
	}
	m, err := build(mf, tensors, manifestName, weightsName)
	if err != nil {
		return nil, err
	}
	m.Digest = digest(manifest, weights)
	return m, nil
}

// digest is the hex SHA-256 of a model's manifest followed by its weights.
func digest(manifest, weights []byte) string {
	h := sha256.New()
	h.Write(manifest)
	h.Write(weights)
	return hex.EncodeToString(h.Sum(nil))
}

// build joins a validated manifest to its tensors, checking each shape
// against the running feature width.
func build(mf *Manifest, tensors []*Tensor, manifestName, weightsName string) (*Model, error) {
	maxError, err := mf.maxError()
	if err != nil {
		return nil, err // Validate has checked it
	}
	prec, err := mf.precisionConfig()
	if err != nil {
		return nil, err
	}
	m := &Model{
		Name:          mf.Name,
		Version:       mf.Version,
		InputFeatures: mf.InputFeatures,
		Layers:        make([]Layer, len(mf.Layers)),
		Quality:       Quality{MaxError: maxError},
		Precision:     prec,
	}
	byName := make(map[string]*Tensor, len(tensors))
	for _, t := range tensors {
		byName[t.Name] = t
	}
	used := make(map[string]bool, len(tensors))
	width := mf.InputFeatures
	for i, l := range mf.Layers {
		mismatch := func(format string, args ...any) error {
			return fmt.Errorf("model: %s: %w: layer %d (%s): "+format,
				append([]any{manifestName, ErrTensorMismatch, i, l.Op}, args...)...)
		}
		// take returns the tensor called name, checking its shape against
		// want; a want of -1 (linear's out) takes any positive size.
		take := func(name string, want ...int) (*Tensor, error) {
			t, ok := byName[name]
			if !ok {
				return nil, mismatch("tensor %q is not in %s", name, WeightsFile)
			}
			used[name] = true
			ok = len(t.Shape) == len(want)
			for j := 0; ok && j < len(want); j++ {
				ok = t.Shape[j] == want[j] || want[j] == -1 && t.Shape[j] > 0 && t.Shape[j] <= MaxFeatures
			}
			if !ok {
				return nil, mismatch("tensor %q in %s has shape %v, want %s", name, WeightsFile, t.Shape, shapeString(want))
			}
			return t, nil
		}
		layer := Layer{Op: l.Op, In: width, Out: width, Eps: l.eps()}
		var err error
		switch l.Op {
		case Linear:
			if layer.Weight, err = take(l.Weight, -1, width); err != nil {
				return nil, err
			}
			layer.Out = layer.Weight.Shape[0]
			if l.Bias != "" {
				if layer.Bias, err = take(l.Bias, layer.Out); err != nil {
					return nil, err
				}
			}
		case LayerNorm, RMSNorm:
			if layer.Weight, err = take(l.Weight, width); err != nil {
				return nil, err
			}
			if l.Bias != "" {
				if layer.Bias, err = take(l.Bias, width); err != nil {
					return nil, err
				}
			}
		}
		m.Layers[i] = layer
		width = layer.Out
	}
	m.OutputFeatures = width
	for _, t := range tensors { // sorted by name
		if !used[t.Name] {
			return nil, fmt.Errorf("model: %s: %w: tensor %q is used by no layer of %s", weightsName, ErrTensorMismatch, t.Name, ManifestFile)
		}
	}
	return m, nil
}

// shapeString formats a wanted shape, with "out" for a free dimension.
func shapeString(want []int) string {
	parts := make([]string, len(want))
	for i, d := range want {
		if d == -1 {
			parts[i] = "out"
		} else {
			parts[i] = fmt.Sprint(d)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

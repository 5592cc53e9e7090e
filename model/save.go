package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Manifest returns the manifest that describes m, with every default
// written out (eps of each norm, quality.max_error, the precision policy)
// except where m leaves the field zero.
func (m *Model) Manifest() *Manifest {
	mf := &Manifest{
		Name:          m.Name,
		Version:       m.Version,
		InputFeatures: m.InputFeatures,
		Layers:        make([]ManifestLayer, len(m.Layers)),
		Precision:     &ManifestPrecision{Initial: string(m.Precision.Initial)},
	}
	if e := m.Quality.MaxError; e != 0 { // 0: a hand-built model; the default
		mf.Quality = &ManifestQuality{MaxError: &e}
	}
	for _, f := range m.Precision.Ladder {
		mf.Precision.Ladder = append(mf.Precision.Ladder, string(f))
	}
	for i, l := range m.Layers {
		ml := ManifestLayer{Op: l.Op}
		if l.Weight != nil {
			ml.Weight = l.Weight.Name
		}
		if l.Bias != nil {
			ml.Bias = l.Bias.Name
		}
		if (l.Op == LayerNorm || l.Op == RMSNorm) && l.Eps != 0 {
			eps := l.Eps
			ml.Eps = &eps
		}
		mf.Layers[i] = ml
	}
	return mf
}

// Save writes m to dir/model.json and dir/model.safetensors, creating dir if
// needed. Each file is written to a temporary file in dir and renamed into
// place, the weights first, so a reader never sees a partly written file
// (though a reader racing Save may see the new weights with the old
// manifest, which fails validation).
//
// The files are m's canonical encoding: an indented manifest with every
// default written out, and the tensors stored as their DType, in name order.
// Load(dir) then returns a model equal to m, weight for weight, whenever
// m's weights are representable in their DTypes (always so for a loaded or
// synthesised model; others are rounded to nearest). The reloaded Digest is
// that of the canonical encoding: equal to m.Digest for a model from Synth
// or from canonical files, and otherwise different.
//
// Save validates the encoding as Load would before it writes anything, so
// it never writes a model that Load rejects.
func Save(m *Model, dir string) error {
	manifest, weights, _, err := encode(m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model: save: %w", err)
	}
	if err := writeAtomic(dir, WeightsFile, weights); err != nil {
		return err
	}
	return writeAtomic(dir, ManifestFile, manifest)
}

// encode returns m's canonical files and their digest, having decoded them
// again as Load would.
func encode(m *Model) (manifest, weights []byte, digestHex string, err error) {
	manifest, err = json.MarshalIndent(m.Manifest(), "", "  ")
	if err != nil {
		return nil, nil, "", fmt.Errorf("model: save %s: %w", m.Name, err)
	}
	manifest = append(manifest, '\n')
	var wb bytes.Buffer
	if err := WriteSafetensors(&wb, m.Tensors()); err != nil {
		return nil, nil, "", fmt.Errorf("model: save %s: %w", m.Name, err)
	}
	weights = wb.Bytes()
	prefix := "save " + m.Name + ": "
	back, err := decode(prefix+ManifestFile, manifest, prefix+WeightsFile, weights)
	if err != nil {
		return nil, nil, "", err
	}
	return manifest, weights, back.Digest, nil
}

// writeAtomic writes data to dir/name through a temporary file and a rename.
func writeAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("model: save: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("model: save %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

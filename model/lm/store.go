package lm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gearbox-inference/gearbox/model"
)

// A language model in the object store (model.Bucket, or the deployment's
// bucket) is the files of its checkpoint directory, byte for byte, as
// objects <name>/<file>: config.json, the safetensors file or the index
// and its shards, and whichever of generation_config.json, model.json,
// tokenizer.json and tokenizer_config.json it has. Every object carries the
// model's Digest (metadata key model.DigestKey) so that Fetch can tell a
// set from one push from a set torn by a concurrent push. config.json goes
// last: a model is in the bucket once its config.json is.

// fetchRetries and fetchBackoff bound Fetch's retries of a torn read.
const (
	fetchRetries = 5
	fetchBackoff = 50 * time.Millisecond
)

// Push loads and validates the checkpoint in dir, as Load does, and only
// then puts its files into the object store bucket ("" is model.Bucket),
// creating the bucket if needed. It returns the model pushed. A tensor
// model of the same name in the bucket is an error. A checkpoint the
// bucket already holds — the same files, each of the same size and
// recorded with the same model digest — is not put again (a push of
// gigabytes takes minutes).
func Push(ctx context.Context, js jetstream.JetStream, bucket, dir string) (*Model, error) {
	bucket = cmp.Or(bucket, model.Bucket)
	m, err := Load(dir)
	if err != nil {
		return nil, err
	}
	files, err := checkpointFiles(dir)
	if err != nil {
		return nil, err
	}
	obs, err := model.ObjectStore(ctx, js, bucket, true)
	if err != nil {
		return nil, fmt.Errorf("lm: push %s to %s: %w", m.Name, bucket, err)
	}
	if _, err := obs.GetInfo(ctx, m.Name+"/"+model.ManifestFile); err == nil {
		if _, err := obs.GetInfo(ctx, m.Name+"/"+model.ConfigFile); errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, fmt.Errorf("lm: push %s: bucket %s holds a tensor model of that name", m.Name, bucket)
		}
	}
	infos, err := obs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, fmt.Errorf("lm: push %s: %w", m.Name, err)
	}
	if held(infos, m, dir, files) {
		return m, nil
	}
	for _, file := range files {
		f, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			return nil, fmt.Errorf("lm: push %s: %w", m.Name, err)
		}
		meta := jetstream.ObjectMeta{
			Name:        m.Name + "/" + file,
			Description: "gearbox language model " + m.Name,
			Metadata:    map[string]string{model.DigestKey: m.Digest},
		}
		_, err = obs.Put(ctx, meta, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("lm: push %s: %s/%s: %w", m.Name, bucket, meta.Name, err)
		}
	}
	// Files of an earlier push that this one lacks (shards of a checkpoint
	// now unsharded) would look like a torn push to Fetch: delete them.
	for _, info := range infos {
		if file, ok := strings.CutPrefix(info.Name, m.Name+"/"); ok && !slices.Contains(files, file) {
			if err := obs.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
				return nil, fmt.Errorf("lm: push %s: %s/%s: %w", m.Name, bucket, info.Name, err)
			}
		}
	}
	return m, nil
}

// held reports whether infos, the bucket's objects, are exactly the files
// of m's checkpoint in dir: each of the same size, recorded with m's
// digest, and no other object of m's name.
func held(infos []*jetstream.ObjectInfo, m *Model, dir string, files []string) bool {
	n := 0
	for _, info := range infos {
		file, ok := strings.CutPrefix(info.Name, m.Name+"/")
		if !ok {
			continue
		}
		n++
		fi, err := os.Stat(filepath.Join(dir, file))
		if !slices.Contains(files, file) || err != nil || uint64(fi.Size()) != info.Size || info.Metadata[model.DigestKey] != m.Digest {
			return false
		}
	}
	return n == len(files)
}

// checkpointFiles lists the files of the checkpoint in dir that Load
// reads, config.json last.
func checkpointFiles(dir string) ([]string, error) {
	var files []string
	for _, f := range []string{GenerationFile, model.ManifestFile, TokenizerFile, TokenizerConfigFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			files = append(files, f)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, WeightsFile)); err == nil {
		files = append(files, WeightsFile)
	} else {
		data, err := os.ReadFile(filepath.Join(dir, IndexFile))
		if err != nil {
			return nil, fmt.Errorf("lm: %w", err)
		}
		_, shards, err := parseIndex(data)
		if err != nil {
			return nil, fmt.Errorf("lm: %s: %w", filepath.Join(dir, IndexFile), err)
		}
		files = append(append(files, shards...), IndexFile)
	}
	return append(files, model.ConfigFile), nil
}

// Fetch gets the language model called name from the object store bucket
// ("" is model.Bucket) and loads it from memory, validating it as Load
// does. It returns an error wrapping model.ErrNotFound when the bucket or
// the model's config.json is absent, and model.ErrInconsistent when it
// kept reading files of different pushes.
func Fetch(ctx context.Context, js jetstream.JetStream, bucket, name string) (*Model, error) {
	bucket = cmp.Or(bucket, model.Bucket)
	if !model.ValidName(name) {
		return nil, fmt.Errorf("lm: %w: %q is not a valid model name", model.ErrNotFound, name)
	}
	obs, err := model.ObjectStore(ctx, js, bucket, false)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("lm: %w: %q (no bucket %s): %w", model.ErrNotFound, name, bucket, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lm: fetch %s: %w", name, err)
	}
	for attempt := 0; ; attempt++ {
		m, torn, err := fetchOnce(ctx, obs, bucket, name)
		if err != nil || !torn {
			return m, err
		}
		if attempt == fetchRetries {
			return nil, fmt.Errorf("lm: %w: the objects of %s/%s are from different pushes", model.ErrInconsistent, bucket, name)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lm: fetch %s: %w", name, ctx.Err())
		case <-time.After(time.Duration(attempt+1) * fetchBackoff):
		}
	}
}

// fetchOnce reads every object of the model and loads it; torn reports
// objects of different pushes.
func fetchOnce(ctx context.Context, obs jetstream.ObjectStore, bucket, name string) (m *Model, torn bool, err error) {
	cfg, err := obs.GetInfo(ctx, name+"/"+model.ConfigFile)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, false, fmt.Errorf("lm: %w: %q (no object %s/%s/%s)", model.ErrNotFound, name, bucket, name, model.ConfigFile)
	}
	if err != nil {
		return nil, false, fmt.Errorf("lm: fetch %s: %w", name, err)
	}
	want := cfg.Metadata[model.DigestKey]
	infos, err := obs.List(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("lm: fetch %s: %w", name, err)
	}
	fsys := fstest.MapFS{}
	mem := map[string][]byte{}
	for _, info := range infos {
		file, ok := strings.CutPrefix(info.Name, name+"/")
		if !ok || strings.Contains(file, "/") || !fs.ValidPath(file) {
			continue
		}
		if info.Metadata[model.DigestKey] != want {
			return nil, true, nil
		}
		data, _, err := model.ReadObject(ctx, obs, info.Name, -1)
		if err != nil {
			return nil, false, fmt.Errorf("lm: fetch %s/%s: %w", bucket, info.Name, err)
		}
		fsys[name+"/"+file] = &fstest.MapFile{Data: data, Mode: 0o444}
		mem[name+"/"+file] = data
	}
	m, err = loadMem(fsys, mem, name)
	if err != nil {
		return nil, false, fmt.Errorf("%w (from bucket %s)", err, bucket)
	}
	if want != "" && m.Digest != want {
		return nil, true, nil // a file was replaced between List and Get
	}
	if m.Name != name {
		return nil, false, fmt.Errorf("lm: %s/%s: %w: name %q, but the objects are under %q", bucket, name, model.ErrInvalidManifest, m.Name, name)
	}
	return m, false, nil
}

// Names lists the language models in the bucket (those whose config.json
// is there), sorted; a missing bucket holds none.
func Names(ctx context.Context, js jetstream.JetStream, bucket string) ([]string, error) {
	obs, err := model.ObjectStore(ctx, js, cmp.Or(bucket, model.Bucket), false)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, info := range infos {
		if name, file, ok := strings.Cut(info.Name, "/"); ok && file == model.ConfigFile && model.ValidName(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

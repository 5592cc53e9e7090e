package model

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the JetStream object store bucket that holds the models of a
// deployment with the default subject prefix (gearbox.Subjects.ModelBucket
// names it for any prefix), so that scaled-out workers need no shared disk.
// Model <name> is the two objects <name>/model.json and
// <name>/model.safetensors, byte for byte the files of its directory. Push,
// Fetch and List take the bucket to use; "" means Bucket.
const Bucket = "gearbox_models"

// DigestKey is the object metadata key under which Push records the model's
// Digest on its objects, so that Fetch can tell objects from one push from
// objects torn by a concurrent push (language models too: package lm).
const DigestKey = "gearbox-digest"

// Fetch retries a torn read this many times, fetchBackoff apart (times the
// attempt number), before it returns ErrInconsistent.
const (
	fetchRetries = 5
	fetchBackoff = 50 * time.Millisecond
)

// Push loads and validates the model in dir, as Load does, and only then
// puts its two files into the object store bucket (creating the bucket, with
// default settings, if it does not exist; an existing bucket's settings are
// left alone). It returns the model pushed, whose Digest is that of the
// files. Validation errors are Load's.
func Push(ctx context.Context, js jetstream.JetStream, bucket, dir string) (*Model, error) {
	dir = cmp.Or(dir, ".")
	bucket = cmp.Or(bucket, Bucket)
	display := func(file string) string { return filepath.Join(dir, file) }
	manifest, weights, err := readFiles(os.DirFS(dir), ".", display)
	if err != nil {
		return nil, err
	}
	m, err := decode(display(ManifestFile), manifest, display(WeightsFile), weights)
	if err != nil {
		return nil, err
	}
	obs, err := ObjectStore(ctx, js, bucket, true)
	if err != nil {
		return nil, fmt.Errorf("model: push %s to %s: %w", m.Name, bucket, err)
	}
	if _, err := obs.GetInfo(ctx, m.Name+"/"+ConfigFile); err == nil {
		return nil, fmt.Errorf("model: push %s: bucket %s holds a language model of that name", m.Name, bucket)
	}
	// The weights go first so that a model.json in the bucket always has
	// weights beside it.
	for _, f := range []struct {
		name string
		data []byte
	}{{WeightsFile, weights}, {ManifestFile, manifest}} {
		meta := jetstream.ObjectMeta{
			Name:        m.Name + "/" + f.name,
			Description: "gearbox model " + m.Name,
			Metadata:    map[string]string{DigestKey: m.Digest},
		}
		if _, err := obs.Put(ctx, meta, bytes.NewReader(f.data)); err != nil {
			return nil, fmt.Errorf("model: push %s: %s/%s: %w", m.Name, bucket, meta.Name, err)
		}
	}
	return m, nil
}

// Fetch gets the model called name from the object store bucket and loads
// it from memory, validating it as Load does. It returns an error wrapping
// ErrNotFound (and the jetstream error that said so) if the bucket or either
// object is absent, and ErrInconsistent if it kept reading the two objects
// from different pushes. Errors name the objects as
// <bucket>/<name>/model.json and <bucket>/<name>/model.safetensors.
func Fetch(ctx context.Context, js jetstream.JetStream, bucket, name string) (*Model, error) {
	bucket = cmp.Or(bucket, Bucket)
	if !ValidName(name) {
		return nil, fmt.Errorf("model: %w: %q is not a valid model name", ErrNotFound, name)
	}
	obs, err := ObjectStore(ctx, js, bucket, false)
	if err != nil {
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("model: %w: %q (no bucket %s): %w", ErrNotFound, name, bucket, err)
		}
		return nil, fmt.Errorf("model: fetch %s: %w", name, err)
	}
	manifestName := bucket + "/" + name + "/" + ManifestFile
	weightsName := bucket + "/" + name + "/" + WeightsFile
	for attempt := 0; ; attempt++ {
		manifest, mdigest, err := getObject(ctx, obs, bucket, name, ManifestFile, MaxManifestSize+1)
		if err != nil {
			return nil, err
		}
		weights, wdigest, err := getObject(ctx, obs, bucket, name, WeightsFile, -1)
		if err != nil {
			return nil, err
		}
		d := digest(manifest, weights)
		// Objects put by other tools carry no digest; trust them.
		if mdigest == "" && wdigest == "" || mdigest == d && wdigest == d {
			m, err := decode(manifestName, manifest, weightsName, weights)
			if err != nil {
				return nil, err
			}
			if m.Name != name {
				return nil, fmt.Errorf("model: %s: %w: name %q, but the objects are under %q", manifestName, ErrInvalidManifest, m.Name, name)
			}
			return m, nil
		}
		if attempt == fetchRetries {
			return nil, fmt.Errorf("model: %w: %s and %s are from different pushes (digests %.12s and %.12s)", ErrInconsistent, manifestName, weightsName, mdigest, wdigest)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("model: fetch %s: %w", name, ctx.Err())
		case <-time.After(time.Duration(attempt+1) * fetchBackoff):
		}
	}
}

// List returns the names of the tensor models in the object store bucket,
// sorted: those with both objects present (language models: lm.Names). A missing bucket holds no models.
func List(ctx context.Context, js jetstream.JetStream, bucket string) ([]string, error) {
	bucket = cmp.Or(bucket, Bucket)
	obs, err := ObjectStore(ctx, js, bucket, false)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("model: list %s: %w", bucket, err)
	}
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("model: list %s: %w", bucket, err)
	}
	files := make(map[string]int) // model name → files present
	lms := make(map[string]bool)  // language models (package lm) have a config.json
	for _, info := range infos {
		name, file, ok := strings.Cut(info.Name, "/")
		if ok && ValidName(name) && (file == ManifestFile || file == WeightsFile) {
			files[name]++
		}
		if ok && file == ConfigFile {
			lms[name] = true
		}
	}
	var names []string
	for name, n := range files {
		if n == 2 && !lms[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// ObjectStore binds to the model bucket, creating it if create is set.
func ObjectStore(ctx context.Context, js jetstream.JetStream, bucket string, create bool) (jetstream.ObjectStore, error) {
	obs, err := js.ObjectStore(ctx, bucket)
	if !create || !errors.Is(err, jetstream.ErrBucketNotFound) {
		return obs, err
	}
	obs, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      bucket,
		Description: "Gearbox models: <name>/<file>, the files of each model's directory",
	})
	if errors.Is(err, jetstream.ErrBucketExists) { // another pusher won the race
		return js.ObjectStore(ctx, bucket)
	}
	return obs, err
}

// getObject reads object <name>/<file>, at most limit bytes if limit >= 0,
// and returns it with the model digest Push recorded on it ("" if none).
func getObject(ctx context.Context, obs jetstream.ObjectStore, bucket, name, file string, limit int64) ([]byte, string, error) {
	object := name + "/" + file
	data, info, err := ReadObject(ctx, obs, object, limit)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, "", fmt.Errorf("model: %w: %q (no object %s/%s): %w", ErrNotFound, name, bucket, object, err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("model: fetch %s/%s: %w", bucket, object, err)
	}
	return data, info.Metadata[DigestKey], nil
}

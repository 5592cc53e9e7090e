package chaos

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
)

// Binaries are the programs a drill runs as processes.
type Binaries struct {
	// Gearbox is the gearbox command, built from this module.
	Gearbox string
	// NATSD is internal/chaos/natsd: a NATS server with JetStream.
	NATSD string
}

// Build compiles the gearbox command and natsd from this module into dir
// with the go command that runs the tests (one invocation, so the two
// links share the build cache and run in parallel). It must run inside the
// module, as tests do.
func Build(ctx context.Context, dir string) (Binaries, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return Binaries{}, fmt.Errorf("chaos: no go command to build with: %w", err)
	}
	const mod = "github.com/gearbox-inference/gearbox"
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", dir+string(filepath.Separator), mod+"/cmd/gearbox", mod+"/internal/chaos/natsd")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("chaos: go build: %w\n%s", err, out)
	}
	return Binaries{Gearbox: filepath.Join(dir, "gearbox"), NATSD: filepath.Join(dir, "natsd")}, nil
}

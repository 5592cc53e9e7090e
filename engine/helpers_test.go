package engine_test

import "os"

// tempDir is a directory for a test checkpoint; lm.Load reads the files
// whole, so it may go once the model is loaded (the process's end).
func tempDir() (string, error) { return os.MkdirTemp("", "gearbox-engine-") }

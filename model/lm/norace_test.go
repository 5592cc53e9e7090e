//go:build !race

package lm_test

// raceEnabled is true under -race, where TestLoadPeakMemory uses a smaller
// checkpoint: writing tens of MB under the race detector takes half a minute.
const raceEnabled = false

//go:build !race

package precision_test

// raceEnabled is true under -race, where the exhaustive tests do not run.
const raceEnabled = false

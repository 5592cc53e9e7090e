// Package chaos runs Gearbox's failure drills with real processes: NATS
// servers (natsd, the nats-server library as a command of its own) and
// `gearbox worker` processes built from this module, supervised like pods
// (started again when they die), with the producers and the final account
// in the test process. The drills check the fleet's promises where a
// single-process test cannot: under SIGKILL of workers and servers, with
// state on disk and in-flight messages really lost.
//
// The package holds the harness (Build, StartServer, StartCluster,
// StartFleet, Publish, WaitDrained, ReadAccount, Tally); the drills are its
// tests:
//
//   - TestSoak: jobs published at a steady rate while a random worker is
//     SIGKILLed every few seconds and the server is SIGKILLed once and
//     started again on the same store and port. Every job must end with
//     exactly one successful result (checked against the float64
//     reference), no dead letter, nothing left in the job stream.
//   - TestClusterLeaderLoss: the same on three clustered servers with R3
//     streams, while the job stream's leader and then the result stream's
//     leader are killed and restarted.
//   - TestHostileCorpus: the crafted jobs in testdata/hostile (every
//     defect class of issue 9) mixed with good jobs, against two worker
//     processes: each job ends as the corpus says, the good ones are
//     answered correctly, no worker dies, and their peak RSS stays bounded.
//
// Scale is set by the environment:
//
//	GEARBOX_CHAOS_JOBS        jobs per drill            (3,000)
//	GEARBOX_CHAOS_RATE        jobs published per second (150)
//	GEARBOX_CHAOS_KILL_EVERY  pause between worker kills (2s)
//	GEARBOX_CHAOS_WORKERS     worker processes           (3)
//	GEARBOX_CHAOS_CLUSTER     set to 1 to run the cluster drill
//
// GEARBOX_CHAOS_GEARBOX=/path/to/gearbox drills that binary instead of the
// one built from the tree.
//
// `task chaos` runs the reduced drills (they also run in `go test ./...`
// unless -short); `task chaos:full` runs 100,000 jobs with a kill every
// 5 s and the cluster drill. docs/operations.md ("Failure drills") says
// what each drill proves.
package chaos

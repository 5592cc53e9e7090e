// Package worker binds to the shared durable consumer of the job stream,
// batches jobs by (model, precision), runs the batches on a kernels.Backend
// and publishes one result per job.
//
// Ack discipline: a job is acked only after its result has been stored in
// the result stream (the publish acknowledged). Results are published with
// Nats-Msg-Id set to the job id, so a redelivered job never yields a second
// stored result. Invalid jobs get an error result and a dead letter carrying
// the original payload and the reason, and are terminated; expired jobs get
// an expired result without compute and are acked; a job the worker fails to
// run is retried with a delay and dead-lettered on its last delivery.
//
// Run's context is a hard stop: nothing more is published or acked, and
// whatever was in flight is redelivered to other workers after AckWait.
// Shutdown is the graceful stop: it stops pulling, finishes and publishes the
// batches in flight, acks them, and returns when Run has.
package worker

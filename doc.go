// Package gearbox holds Gearbox's wire contract and its Go client.
//
// Producers publish inference jobs to gearbox.jobs.<model>; workers pull them
// from one shared durable consumer, batch them by (model, precision), run
// them and publish a Result to gearbox.results.<model>. This package defines
// the Job, Tensor, Result and Error types, their msgpack and JSON encodings,
// the subject and stream names, stream provisioning, and a Client for
// producers and result consumers. docs/wire.md is the contract in prose.
//
// Encoding is msgpack unless the message carries the header
// "Content-Type: application/json"; a result is encoded like its job.
package gearbox

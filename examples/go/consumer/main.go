// Command consumer follows a model's results in the result stream, from its
// start, until COUNT have come; it exits non-zero if any carries an error.
//
//	NATS_URL=nats://127.0.0.1:4222 MODEL=demo COUNT=10 go run ./examples/go/consumer
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gearbox-inference/gearbox"
)

func main() {
	url := env("NATS_URL", "nats://127.0.0.1:4222")
	model := env("MODEL", "demo")
	count, _ := strconv.Atoi(env("COUNT", "10"))

	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Drain()
	c, err := gearbox.NewClient(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen, failed := 0, false
	for r, err := range c.Results(ctx, model, true) {
		if err != nil {
			log.Fatal(err)
		}
		if r.Error != nil {
			fmt.Printf("%s: %s: %s\n", r.ID, r.Error.Code, r.Error.Message)
			failed = true
		} else {
			fmt.Printf("%s: %s %v by %s\n", r.ID, r.Precision, r.Output.Shape, r.Worker)
		}
		if seen++; seen == count {
			break
		}
	}
	if seen < count {
		log.Fatalf("%d results; want %d", seen, count)
	}
	if failed {
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Command producer is a Gearbox producer in Go: it submits jobs with the
// client in the root package and waits for each result on a reply inbox.
//
//	NATS_URL=nats://127.0.0.1:4222 MODEL=demo FEATURES=64 JOBS=10 go run ./examples/go/producer
package main

import (
	"context"
	"fmt"
	"log"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gearbox-inference/gearbox"
)

func main() {
	url := env("NATS_URL", "nats://127.0.0.1:4222")
	model := env("MODEL", "demo")
	features, _ := strconv.Atoi(env("FEATURES", "64"))
	jobs, _ := strconv.Atoi(env("JOBS", "10"))

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

	// Submit sets Nats-Msg-Id to the job id; Do also waits for the result
	// on a fresh inbox.
	failed := false
	for i := range jobs {
		x := make([]float32, features)
		for j := range x {
			x[j] = float32(math.Sin(float64(i)*7.1+float64(j)) / 2)
		}
		j := &gearbox.Job{ID: fmt.Sprintf("go-%d", i), Model: model, Input: gearbox.NewTensor(1, features, x),
			Meta: map[string]string{"from": "go"}}
		r, err := c.Do(ctx, j)
		if err != nil {
			log.Fatal(err)
		}
		if r.Error != nil {
			fmt.Printf("%s: %s: %s\n", r.ID, r.Error.Code, r.Error.Message)
			failed = true
			continue
		}
		out, err := r.Output.Values()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s %v first %.4f by %s\n", r.ID, r.Precision, r.Output.Shape, out[0], r.Worker)
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

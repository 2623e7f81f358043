package natstest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/cmd/cxlink/apptest/natstest"
)

// Three nodes, an R3 stream and a durable consumer: killing the stream's leader loses no
// acknowledged message, and publishes and reads go on through the other two; the killed
// node comes back with its store and the same ports, and the cluster then survives a
// graceful stop of another node.
func TestClusterSurvivesLeaderKill(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	ctx := t.Context()
	js, err := jetstream.New(c.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"},
		Replicas: 3, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := &reader{t: t, cons: cons}
	publish(t, js, 0, 100)
	r.readUpTo(100)

	leader := c.StreamLeader(t, "ORDERS")
	t.Logf("stream leader %s, meta leader %s; killing the stream leader", c.Name(leader), c.Name(c.MetaLeader(t)))
	c.Kill(leader)
	if c.Running(leader) {
		t.Fatal("killed node still running")
	}
	publish(t, js, 100, 200)
	r.readUpTo(200)
	next := c.StreamLeader(t, "ORDERS")
	if next == leader {
		t.Fatalf("the killed node %s still leads", c.Name(leader))
	}
	t.Logf("new stream leader %s, meta leader %s", c.Name(next), c.Name(c.MetaLeader(t)))

	c.Restart(leader)
	c.Stop(next)
	publish(t, js, 200, 250)
	r.readUpTo(250)
	c.Restart(next)
	s, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != 250 {
		t.Errorf("the stream holds %d messages, want 250", got)
	}
	if got := c.ClientURLs(); len(got) != 3 || got[leader] != c.ClientURL(leader) {
		t.Errorf("client URLs %v", got)
	}
}

// Options reach every node: a cluster that requires credentials refuses a client
// without them, serves the cluster's own connections with them, and its JetStream
// syncs as the options say.
func TestClusterWithOptions(t *testing.T) {
	c := natstest.StartClusterWith(t, 3, natstest.Options{
		Config:    `authorization { users: [{user: "app", password: "app-secret"}] }`,
		JetStream: `sync_interval: "always"`,
		Client:    []nats.Option{nats.UserInfo("app", "app-secret")},
	})
	if nc, err := nats.Connect(c.URL()); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	}
	js, err := jetstream.New(c.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	c.StreamLeader(t, "ORDERS")
	for i := range c.Size() {
		var varz struct {
			JetStream struct {
				Config struct {
					SyncAlways bool `json:"sync_always"`
				} `json:"config"`
			} `json:"jetstream"`
		}
		resp, err := http.Get(c.MonitorURL(i) + "/varz")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&varz)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !varz.JetStream.Config.SyncAlways {
			t.Errorf("node %s does not sync always", c.Name(i))
		}
	}
}

// publish publishes messages from … to-1, each with its index as its id, retrying while
// the stream elects a leader: the id makes the stream drop the copy of a retried publish
// that did land.
func publish(t *testing.T, js jetstream.JetStream, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			_, err := js.Publish(ctx, fmt.Sprintf("orders.%d", i), fmt.Appendf(nil, "order %d", i), jetstream.WithMsgID(fmt.Sprint(i)))
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %d: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// reader reads the durable consumer in order, acknowledging each message.
type reader struct {
	t    *testing.T
	cons jetstream.Consumer
	next uint64 // stream sequence expected next, from 1
}

// readUpTo reads until it has seen messages 0 … n-1, exactly in order (a redelivery of
// one already seen is acknowledged again and skipped), retrying while leaders change.
func (r *reader) readUpTo(n int) {
	r.t.Helper()
	if r.next == 0 {
		r.next = 1
	}
	deadline := time.Now().Add(time.Minute)
	for r.next <= uint64(n) {
		if time.Now().After(deadline) {
			r.t.Fatalf("read %d of %d messages in a minute", r.next-1, n)
		}
		batch, err := r.cons.Fetch(50, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for msg := range batch.Messages() {
			meta, err := msg.Metadata()
			if err != nil {
				r.t.Fatal(err)
			}
			switch seq := meta.Sequence.Stream; {
			case seq > r.next:
				r.t.Fatalf("read message %d after %d: a gap", seq, r.next-1)
			case seq == r.next:
				if want := fmt.Sprintf("order %d", seq-1); string(msg.Data()) != want {
					r.t.Fatalf("message %d is %q, want %q", seq, msg.Data(), want)
				}
				r.next++
			}
			_ = msg.Ack()
		}
	}
}

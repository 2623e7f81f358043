package stream

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrFull marks a publish refused because the stream, or the server's JetStream
// storage, reached its limit. Nothing is dropped to make room (the stream discards new
// messages), so the event must be sent again once the operator made room.
var ErrFull = errors.New("the stream is full (CXLINK_STREAM_MAX_BYTES or the server's storage limit)")

// JetStream's error codes for a message the stream cannot store for lack of room.
const (
	errCodeStoreFailed           = 10077 // maximum bytes/messages exceeded
	errCodeInsufficientResources = 10047
)

// full reports whether err is JetStream refusing a message for lack of room.
func full(err error) bool {
	apiErr, ok := errors.AsType[*jetstream.APIError](err)
	if !ok {
		return false
	}
	return apiErr.ErrorCode == errCodeStoreFailed || apiErr.ErrorCode == errCodeInsufficientResources
}

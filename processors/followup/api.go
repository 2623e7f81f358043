package followup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cxlink/cxlink/ingest/auth"
	"github.com/cxlink/cxlink/processors/records"
)

// API serves the follow-up cases: read one, acknowledge it, close it with a reason. A
// change is a message on the case's subject, appended only if the case did not change
// meanwhile (the subject's last sequence is checked), so every replica of the API and
// of the stage sees the same history of each case.
type API struct {
	s      *Settings
	js     jetstream.JetStream
	stream jetstream.Stream
	// auth authenticates requests; nil: ingest serves without credentials, and so does
	// the API.
	auth *auth.Authenticator
	now  func() time.Time
}

// NewAPI returns the API over the follow-up stream, authenticating with authn (nil:
// none).
func NewAPI(s *Settings, js jetstream.JetStream, stream jetstream.Stream, authn *auth.Authenticator) *API {
	return &API{s: s, js: js, stream: stream, auth: authn, now: time.Now}
}

// Routes adds the API's routes to mux.
func (a *API) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/followups/{id}", a.get)
	mux.HandleFunc("POST /v1/followups/{id}/acknowledge", a.acknowledge)
	mux.HandleFunc("POST /v1/followups/{id}/close", a.close)
}

// caller is who sends a request: its source and scope; open when the API serves
// without credentials.
type caller struct {
	source string
	scope  auth.Scope
	open   bool
}

// mayHandle reports whether the caller may read and change the cases of owner.
func (c caller) mayHandle(owner string) bool { return c.open || c.scope.MayHandleFollowUp(owner) }

// authenticate checks the request's credentials (a signed one against body). A
// non-zero status is the answer instead.
func (a *API) authenticate(r *http.Request, body []byte) (caller, int, string) {
	if a.auth == nil {
		return caller{open: true}, 0, ""
	}
	source, scope, signed, e := a.auth.Check(r.Header)
	if e == nil && signed != nil {
		source, scope, e = signed.Verify(body)
	}
	if e != nil {
		return caller{}, e.Code, e.Message
	}
	return caller{source: source, scope: scope}, 0, ""
}

var caseID = regexp.MustCompile(`^fu-[0-9a-f]{24}$`)

// change is the body of acknowledge and close, all optional but the reason of a close.
type change struct {
	By     string `json:"by"`     // who acts; default: the credential's source
	Reason string `json:"reason"` // close: one of CXLINK_FOLLOWUP_CLOSE_REASONS
	Note   string `json:"note"`   // close: free text
}

const maxNote = 2000

// closedUnacknowledged names, between close and apply, the closing of a case nobody
// had acknowledged.
const closedUnacknowledged = "closed-unacknowledged"

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	who, status, msg := a.authenticate(r, nil)
	if status != 0 {
		writeError(w, status, msg)
		return
	}
	c, _, status, msg := a.load(r, who)
	if status != 0 {
		writeError(w, status, msg)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (a *API) acknowledge(w http.ResponseWriter, r *http.Request) {
	a.apply(w, r, func(c *records.FollowUp, ch change, now time.Time) (int, string) {
		if c.State != records.FollowUpOpen {
			return http.StatusOK, "" // already acknowledged or closed: nothing to do
		}
		c.State, c.AcknowledgedAt, c.AcknowledgedBy = records.FollowUpAcknowledged, now, ch.By
		return 0, records.FollowUpAcknowledged
	})
}

func (a *API) close(w http.ResponseWriter, r *http.Request) {
	a.apply(w, r, func(c *records.FollowUp, ch change, now time.Time) (int, string) {
		if !slices.Contains(a.s.CloseReasons, ch.Reason) {
			return http.StatusBadRequest, fmt.Sprintf("reason: %q is not one of %s", ch.Reason, strings.Join(a.s.CloseReasons, ", "))
		}
		if c.State == records.FollowUpClosed {
			if c.CloseReason == ch.Reason {
				return http.StatusOK, "" // a repeated request
			}
			return http.StatusConflict, fmt.Sprintf("the case was closed at %s with reason %s", c.ClosedAt.Format(time.RFC3339), c.CloseReason)
		}
		name := records.FollowUpClosed
		if c.AcknowledgedAt.IsZero() {
			// Closing answers the case: it counts as acknowledged then.
			c.AcknowledgedAt, c.AcknowledgedBy = now, ch.By
			name = closedUnacknowledged
		}
		c.State, c.ClosedAt, c.ClosedBy, c.CloseReason, c.CloseNote = records.FollowUpClosed, now, ch.By, ch.Reason, ch.Note
		return 0, name
	})
}

// apply reads the request, loads the case, lets f change it and appends the change.
// f returns a status to answer with instead (0: append), and the change's name.
func (a *API) apply(w http.ResponseWriter, r *http.Request, f func(*records.FollowUp, change, time.Time) (int, string)) {
	var ch change
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "the body is larger than 16 KiB")
		return
	}
	who, status, msg := a.authenticate(r, body)
	if status != 0 {
		writeError(w, status, msg)
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ch); err != nil {
			writeError(w, http.StatusBadRequest, "body: want JSON such as {\"reason\": \"resolved\", \"note\": \"called back\", \"by\": \"alice\"}: "+err.Error())
			return
		}
	}
	if len(ch.Note) > maxNote || len(ch.By) > 200 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("note: at most %d bytes; by: at most 200", maxNote))
		return
	}
	if ch.By == "" {
		ch.By = who.source
	}
	for range 5 { // another change at the same moment: read it and decide again
		c, seq, status, msg := a.load(r, who)
		if status != 0 {
			writeError(w, status, msg)
			return
		}
		now := a.now().UTC().Truncate(time.Second)
		status, name := f(&c, ch, now)
		if status == http.StatusOK {
			writeJSON(w, http.StatusOK, c)
			return
		}
		if status != 0 {
			writeError(w, status, name)
			return
		}
		data, err := json.Marshal(&c)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		m := &nats.Msg{Subject: Subject(c.ID), Header: nats.Header{}, Data: data}
		if name == closedUnacknowledged {
			name = records.FollowUpClosed
			m.Header.Set(HeaderAcknowledgedOnClose, "true")
		}
		m.Header.Set(HeaderChange, name)
		_, err = a.js.PublishMsg(r.Context(), m, jetstream.WithExpectLastSequencePerSubject(seq))
		if alreadyOpened(err) {
			continue
		}
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "the change could not be stored; try again: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, c)
		return
	}
	writeError(w, http.StatusConflict, "the case keeps changing; read it and try again")
}

// load reads the case named in the request as it stands, with its last sequence, if
// the caller may handle it. A non-zero status is the answer instead.
func (a *API) load(r *http.Request, who caller) (records.FollowUp, uint64, int, string) {
	id := r.PathValue("id")
	if !caseID.MatchString(id) {
		return records.FollowUp{}, 0, http.StatusBadRequest, "id: a case id is fu- and 24 hex digits"
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	msg, err := a.stream.GetLastMsgForSubject(ctx, Subject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return records.FollowUp{}, 0, http.StatusNotFound, "no follow-up case " + id
	}
	if err != nil {
		return records.FollowUp{}, 0, http.StatusServiceUnavailable, "read the case: " + err.Error()
	}
	c, err := Decode(msg.Data)
	if err != nil {
		return records.FollowUp{}, 0, http.StatusInternalServerError, err.Error()
	}
	if !who.mayHandle(c.Owner) {
		return records.FollowUp{}, 0, http.StatusForbidden, fmt.Sprintf("the credentials of %q may not handle the cases of %s (their scope: %s); add followups=%s",
			who.source, c.Owner, who.scope, c.Owner)
	}
	return c, msg.Sequence, 0, ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

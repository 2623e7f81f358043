// Package httpapi is the HTTP face of ingest. It serves
//
//	POST /v1/events  validate events, publish the valid ones to JetStream
//	GET  /healthz    the process is alive: 200 "ok"
//	GET  /readyz     200 "ok" when the injected readiness check passes, else 503 and why
//
// and leaves /metrics to the caller, who mounts promhttp on the same mux:
//
//	h, err := httpapi.New(cfg, httpapi.Options{Publisher: pub, Ready: ready, Logger: log, Registerer: reg})
//	mux := http.NewServeMux()
//	h.Routes(mux)
//	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//	err = httpapi.ListenAndServe(ctx, cfg.Addr, mux, log)
//
// The mux answers 405 (with Allow) for another method on a known path and 404 for an
// unknown path. A Handler is also an http.Handler serving only its own routes.
//
// # Request body
//
// One JSON object, a JSON array of objects, or NDJSON (Content-Type:
// application/x-ndjson, one object per line, blank lines ignored). Without NDJSON the first
// byte that is not white space tells an object from an array. The body is read as a
// stream, one event at a time, and each event is decoded and validated on its own
// (ingest/event): an invalid event, or a malformed NDJSON line, rejects only itself. A
// syntax error in a JSON object or array makes the body unreadable: 400 with the byte
// offset, nothing published. Also refused as a whole, with {"error": "..."}:
//   - 413: a body over CXLINK_MAX_BODY_BYTES, or more than CXLINK_MAX_BATCH_EVENTS events;
//   - 415: a Content-Type other than application/json or application/x-ndjson (none is
//     fine), a charset other than UTF-8, or a Content-Encoding but identity;
//   - 400: no events at all;
//   - 408: the body did not arrive within the read timeout (a slow client);
//   - 429 with Retry-After: CXLINK_MAX_CONCURRENT_REQUESTS requests are being served.
//
// Headers are bounded by MaxHeaderBytes (431 above) and must arrive within
// ReadHeaderTimeout, or the connection is closed.
//
// # Response
//
// The valid events are published in one call, in body order, and the answer waits for
// JetStream: an event reported accepted is durable. The body is a Response:
//
//	{"accepted": 2, "duplicates": 1, "rejected": 1, "failed": 0,
//	 "results": [{"index": 3, "line": 4, "id": "s9", "status": "rejected",
//	              "errors": [{"field": "score", "message": "9 is outside the scale 1–7"}]}, ...]}
//
// results lists only the events not accepted, in body order; index counts events from 0,
// line (NDJSON only) counts lines from 1. The status code is
//   - 202: nothing failed and at least one event is accepted or a duplicate;
//   - 400: every event was rejected;
//   - 503 with Retry-After: JetStream refused some event or did not acknowledge it within
//     CXLINK_PUBLISH_TIMEOUT. Resending the whole body is safe: ids deduplicate, so the
//     events already stored come back as duplicates.
//
// # Metrics
//
// cxlink_ingest_requests_total{code}, cxlink_ingest_request_duration_seconds and
// cxlink_ingest_request_events cover POST /v1/events only (not the probes).
// cxlink_ingest_events_total{outcome} counts events as accepted, duplicate, rejected or
// failed; cxlink_ingest_rejections_total{field} counts rejected events by the field of
// their first error, a field of contract v1 or "(event)" (not JSON, not an object), any
// other name being "other".
package httpapi

// Package simulator plays a contact centre that posts contract v1 events to cxlink's
// ingest API, so that the pipeline, its dashboards and its alerts can be shown and tested
// with data that has the shape of the real thing. It backs `cxlink simulate`.
//
// # What it simulates
//
// Teams of agents (alpha, bravo, …; agent ids agent-<team>-NN, employee ids
// emp-<team>-NN) answer customer contacts on four channels (phone 38%, chat 30%,
// email 22%, web 10%) about six issue categories:
//
//	category          share  handle per contact  contacts per ticket  reopened  mean CES (1–7)
//	refund_request     30%          4 min               1.08              3%         6.3
//	delivery_status    24%          3 min               1.07              2%         6.1
//	billing_question   18%          7 min               1.27              6%         5.3
//	login_problem      14%          9 min               1.47             10%         4.7
//	cancellation       11%          8 min               1.36              5%         4.4
//	plan_correction     3%         25 min               3.8              30%         2.3
//
// Handle time is the median of a phone contact; chat takes 1.25×, email 0.6×, web 0.5×.
//
// plan_correction is the few-but-painful category that volume and handle time hide.
//
// Every contact is a ticket: `created` (contacts 1), `solved` with the handle time and
// contacts so far, and sometimes `reopened` and `solved` again; email and web tickets
// take hours. 55% of solved tickets get a survey response a few minutes later, with a
// CES answer (90%), CSAT (35%) and NPS (20%) drawn from one latent experience, so the
// three agree. Half the responses carry only ticket_id, as helpdesks send ratings; the
// rest carry customer, channel, category, team and agent. About 4% of the responses
// (15% of those to tickets solved within 10 minutes) are sent before any of their
// ticket's events, which follow 2–60 s later and so up to ~11 minutes after their
// occurred_at, to
// exercise attribution.
//
// # Engagement and CES
//
// Each team's engagement (1–5) follows a mean-reverting random walk, one step per pulse
// period (Config.PulseEvery); in every period about 85% of its agents answer the pulse
// questions engagement (1–5) and enps (0–10), spread over the first half of the period.
// A customer's CES mean is the category's base, adjusted for channel, agent, repeat
// contacts and reopens, plus 0.6 × (the team's engagement in the previous period − 3.6),
// so engagement in period t leads CES in period t+1. Periods are aligned like
// time.Truncate(PulseEvery): weekly periods start on Mondays 00:00 UTC.
//
// # Rates
//
// Config.Rate is customer events (tickets and surveys) per second; the default 20
// is, in steady state, 14.5 ticket events/s (6.9 created, 7.3 solved, 0.37 reopened)
// and 5.5 survey responses/s (3.4 CES, 1.3 CSAT, 0.75 NPS), from 6.9 contacts/s.
// Pulses come on top: teams × agents × 0.85 × 2 events per period (82 a week by
// default, 0.14/s with a 10-minute period). A run that starts cold sees fewer solves
// and surveys, and mostly quick easy ones, for its first hours: use History to start
// warm.
//
// # Ids and time
//
// Ids are derived from the seed (base 36) and counters: ticket s<seed>-t<n>, its events
// s<seed>-t<n>-created, -solved-1, -reopened-1, -solved-2, its surveys s<seed>-t<n>-ces,
// -csat, -nps, and pulses s<seed>-w<period>-r<n>-<question> (n counts pulse responses:
// ids never carry employee ids, which ingest pseudonymizes in the payload only). A run with the same
// seed resends the same ids (and, with the same start, the same events): the API counts
// them as duplicates. Runs with different seeds never share an id.
// occurred_at is the simulated time, in UTC and whole seconds. History is sent first as
// fast as the API takes it; those older than the pipeline's allowed lateness are stored
// raw but kept out of its rolling windows (docs/architecture.md).
//
// Generator is the simulation alone (no I/O, deterministic); Run paces it on a clock and
// posts it.
package simulator

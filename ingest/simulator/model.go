package simulator

import (
	"fmt"
	"time"
)

// The contact centre the simulator plays. The numbers are made up but shaped like a
// retail subscription business: most contacts are easy and fast, a few categories take
// several contacts and hurt. They are constants rather than configuration so that a run is
// described by its Config alone and two runs with one seed produce the same data.

// category is one kind of customer issue.
type category struct {
	name string
	// share of all contacts.
	share float64
	// handle is the median handle time of one contact on the phone.
	handle time.Duration
	// extraContacts is the mean number of contacts beyond the first needed to solve
	// the ticket (Poisson).
	extraContacts float64
	// reopen is the probability that a solved ticket is reopened once.
	reopen float64
	// ces is the latent CES mean (1–7) of a one-contact, never-reopened ticket handled by
	// an average agent on the phone; repeat contacts and reopens lower it further.
	ces float64
}

var categories = []category{
	{name: "refund_request", share: 0.30, handle: 4 * time.Minute, extraContacts: 0.05, reopen: 0.03, ces: 6.5},
	{name: "delivery_status", share: 0.24, handle: 3 * time.Minute, extraContacts: 0.05, reopen: 0.02, ces: 6.2},
	{name: "billing_question", share: 0.18, handle: 7 * time.Minute, extraContacts: 0.2, reopen: 0.06, ces: 5.5},
	{name: "login_problem", share: 0.14, handle: 9 * time.Minute, extraContacts: 0.35, reopen: 0.10, ces: 5.0},
	{name: "cancellation", share: 0.11, handle: 8 * time.Minute, extraContacts: 0.3, reopen: 0.05, ces: 4.6},
	// Few contacts, long handle, several contacts per resolution: the category that
	// volume and handle time alone hide.
	{name: "plan_correction", share: 0.03, handle: 25 * time.Minute, extraContacts: 2.2, reopen: 0.30, ces: 3.5},
}

// Categories lists the simulated issue categories, most frequent first.
func Categories() []string {
	out := make([]string, len(categories))
	for i, c := range categories {
		out[i] = c.name
	}
	return out
}

func knownCategory(name string) bool {
	for _, c := range categories {
		if c.name == name {
			return true
		}
	}
	return false
}

// channel is how the customer got in touch.
type channel struct {
	name  string
	share float64
	// handleFactor scales the category's handle time (chat agents run several chats at
	// once, emails are answered in one go).
	handleFactor float64
	// firstWait and gap are the mean wait before the first answer and between two
	// contacts of one ticket: they make the time from created to solved.
	firstWait, gap time.Duration
	// ces is added to the latent CES mean.
	ces float64
}

var channels = []channel{
	{name: "phone", share: 0.38, handleFactor: 1.0, firstWait: 90 * time.Second, gap: 30 * time.Minute, ces: 0},
	{name: "chat", share: 0.30, handleFactor: 1.25, firstWait: time.Minute, gap: 30 * time.Minute, ces: 0.15},
	{name: "email", share: 0.22, handleFactor: 0.6, firstWait: 90 * time.Minute, gap: 3 * time.Hour, ces: -0.35},
	{name: "web", share: 0.10, handleFactor: 0.5, firstWait: 45 * time.Minute, gap: 2 * time.Hour, ces: -0.25},
}

// Effort and survey behaviour.
const (
	// Each contact beyond the first and a reopen lower the latent CES mean: effort is
	// mostly repeat contacts.
	cesPerExtraContact = -0.5
	cesPerReopen       = -0.8
	// agentSkillSD is the spread of the agents' effect on CES.
	agentSkillSD = 0.25

	// engagementMean is the long-run average engagement (1–5) of all teams, and
	// engagementEffect the CES points per engagement point of a team's previous period
	// above it: CES mean ≈ base + engagementEffect × (engagement[t−1] − engagementMean).
	engagementMean   = 3.6
	engagementEffect = 0.6
	// Team engagement is an AR(1) walk around the team's own mean, one step per pulse
	// period: stationary SD = stepSD/√(1−φ²) = 0.5.
	engagementTeamSD = 0.25
	engagementPhi    = 0.8
	engagementStepSD = 0.3

	// pulseAnswer is the probability that an agent answers a pulse: with 8 agents a
	// team reaches the anonymity threshold of 5 respondents in ~97% of periods.
	pulseAnswer = 0.85

	// A solved ticket gets a survey response with probability surveyRespond; the
	// response holds CES, CSAT and NPS questions with these probabilities.
	surveyRespond = 0.55
	surveyCES     = 0.9
	surveyCSAT    = 0.35
	surveyNPS     = 0.2
	// surveyTicketOnly is the share of responses that carry only ticket_id, as
	// helpdesks send ratings; the pipeline must attribute them.
	surveyTicketOnly = 0.5
	// surveyDelay is the mean time from the solve to the answer, after a minimum of
	// surveyMinDelay.
	surveyDelay    = 4 * time.Minute
	surveyMinDelay = 20 * time.Second

	// A response to a ticket solved quickly (created → answer within outOfOrderSpan) is
	// sent before any of its ticket's events with probability outOfOrder: the ticket
	// events follow up to a minute later, so the survey waits for attribution.
	outOfOrder     = 0.15
	outOfOrderSpan = 10 * time.Minute

	// reopenGap is the mean time from a solve to the customer coming back.
	reopenGap = 2 * time.Hour

	// customers is the size of the customer base customer_id is drawn from.
	customers = 200000
)

// eventsPerContact is the expected number of ticket and survey events one customer
// contact produces; Rate is divided by it to get contacts per second.
func eventsPerContact() float64 {
	var reopen float64
	for _, c := range categories {
		reopen += c.share * c.reopen
	}
	tickets := 2 + 2*reopen // created, solved; reopened and solved again
	surveys := surveyRespond * (surveyCES + surveyCSAT + surveyNPS)
	return tickets + surveys
}

// teamNames are the first team names; more teams are numbered.
var teamNames = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot",
	"golf", "hotel", "india", "juliett", "kilo", "lima"}

// TeamNames returns the names of the first n simulated teams.
func TeamNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		if i < len(teamNames) {
			out[i] = teamNames[i]
		} else {
			out[i] = fmt.Sprintf("team-%02d", i+1)
		}
	}
	return out
}

// commentShare is the share of attributed CES answers, among the clearly easy or hard
// ones, that carry a comment.
const commentShare = 0.1

// Comments a few respondents leave, by how the contact went.
var (
	hardComments = []string{
		"Had to explain the problem again every time.",
		"Took several calls to get this fixed.",
		"Still not sure it is sorted out.",
		"Waited a long time for an answer.",
	}
	easyComments = []string{
		"Quick and easy, thanks!",
		"Sorted in one go.",
		"Friendly and fast.",
	}
)

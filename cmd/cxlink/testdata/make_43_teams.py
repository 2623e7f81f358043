# Generates the 43-team week: an HR pulse export (one row per response) and the CES
# responses of the same teams. Deterministic (a fixed LCG), written once into testdata.
import csv
state = 20261123
def rnd(n):
    global state
    state = (state * 1103515245 + 12345) % (2**31)
    return state % n
teams = ["team-%02d" % i for i in range(1, 44)]
with open("hr_pulse_43_teams.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["response_id", "day", "time", "employee", "team", "engagement", "enps"])
    rid = 1000
    for i, t in enumerate(teams):
        level = 1 + rnd(5)            # the team's tendency, 1..5
        n = 5 + rnd(5)                # 5..9 respondents
        for e in range(n):
            eng = min(5, max(1, level + rnd(3) - 1))
            enps = min(10, max(0, 2 * eng + rnd(3) - 1))
            rid += 1
            w.writerow(["r-%d" % rid, rnd(5), "%02d:%02d" % (8 + rnd(9), rnd(60)), "E%04d" % (100 * i + e), t, eng, enps])
with open("ces_43_teams.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "day", "time", "team", "score"])
    eng = {}
    for r in csv.DictReader(open("hr_pulse_43_teams.csv")):
        eng.setdefault(r["team"], []).append(int(r["engagement"]))
    k = 0
    for t in teams:
        m = sum(eng[t]) / len(eng[t])
        for j in range(12):
            s = min(7, max(1, round(m + 1 + rnd(5) - 2)))
            k += 1
            w.writerow(["ces-%d" % k, rnd(7), "%02d:%02d" % (9 + rnd(8), rnd(60)), t, s])

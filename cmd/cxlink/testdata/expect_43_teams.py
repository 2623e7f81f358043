# Expected Pearson r, Fisher-z 95% CI and two-sided p of the team means, computed apart
# from cxlink's Go code: exact rational sums (fractions), then the formulas of R's
# cor.test (t = r*sqrt(df/(1-r^2)), df = n-2; CI = tanh(atanh(r) -+ qnorm(.975)/sqrt(n-3))).
import csv, math, statistics
from fractions import Fraction as F
eng, ces = {}, {}
for r in csv.DictReader(open("hr_pulse_43_teams.csv")):
    eng.setdefault(r["team"], []).append(int(r["engagement"]))
for r in csv.DictReader(open("ces_43_teams.csv")):
    ces.setdefault(r["team"], []).append(int(r["score"]))
teams = sorted(eng)
x = [F(sum(eng[t]), len(eng[t])) for t in teams]
y = [F(sum(ces[t]), len(ces[t])) for t in teams]
n = len(x)
mx, my = sum(x) / n, sum(y) / n
sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
sxx = sum((a - mx) ** 2 for a in x)
syy = sum((b - my) ** 2 for b in y)
r = float(sxy) / math.sqrt(float(sxx) * float(syy))
print("n", n, "r", repr(r), "statistics.correlation", repr(statistics.correlation([float(a) for a in x], [float(b) for b in y])))
z = math.atanh(r); q = statistics.NormalDist().inv_cdf(0.975); se = 1 / math.sqrt(n - 3)
print("ci", repr(math.tanh(z - q * se)), repr(math.tanh(z + q * se)))
df = n - 2
t = r * math.sqrt(df / (1 - r * r))
# two-sided p = I_{df/(df+t^2)}(df/2, 1/2), the regularized incomplete beta by its
# continued fraction (Lentz).
def betacf(a, b, xx):
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * xx / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny); h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * xx / ((a + m2 - 1) * (a + m2))
        d = 1 + aa * d; d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c; c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (a + b + m) * xx / ((a + m2) * (a + m2 + 1))
        d = 1 + aa * d; d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + aa / c; c = c if abs(c) > tiny else tiny
        de = d * c; h *= de
        if abs(de - 1) < 1e-16: break
    return h
def ibeta(a, b, xx):
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(xx) + b * math.log(1 - xx)
    if xx < (a + 1) / (a + b + 2):
        return math.exp(lbt) * betacf(a, b, xx) / a
    return 1 - math.exp(lbt) * betacf(b, a, 1 - xx) / b
print("t", repr(t), "df", df, "p", repr(ibeta(df / 2, 0.5, df / (df + t * t))))
# Spearman: Pearson of average ranks.
def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i]); rk = [0.0] * len(v); i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]: j += 1
        for k in range(i, j + 1): rk[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return rk
print("spearman", repr(statistics.correlation(ranks(x), ranks(y))))
print("teams with 5..9 respondents:", sorted(set(len(eng[t]) for t in teams)), "ces n", sorted(set(len(ces[t]) for t in teams)))

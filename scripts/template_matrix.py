#!/usr/bin/env python3
"""Render template.yaml under many parameter combinations and check each.

cfn-lint checks the template once, for every value at the same time; this
script checks what each combination of the optional features (README
"Operating") actually deploys. For every combination it

  * validates the parameter values (AllowedValues, AllowedPattern, Min/Max)
    and evaluates the Rules: combinations the template must refuse are refused
    with the expected message, the others pass;
  * evaluates Conditions, drops the resources whose Condition is false, and
    resolves Fn::If / Ref / Fn::Sub / Fn::GetAtt / Fn::Split / Fn::Select /
    Fn::Join / AWS::NoValue in every resource and output; a Ref, GetAtt, Sub
    variable or DependsOn naming a resource that does not exist in that
    combination is an error;
  * checks which resources exist and what the function, the APIs, the
    gateway responses, the alarms and the usage plan look like;
  * renders the dashboard body and parses it as JSON.

The combinations: each API type x each backend with its defaults, with
everything off and with everything on; each option alone; every option
on/off in every combination (2^11 REST, 2^8 HTTP, Backend=authlete); the
usage plan with the jwt/cognito backends, with and without a secret; and
options that must be refused (REST-only options on HTTP, bad values).

Then (--lint, the default) it runs cfn-lint once on the fully resolved
template of the two "everything on" combinations (REST and HTTP).

Python 3.11 and the cfn-lint venv only (its YAML decoder reads the CloudFormation
tags):  .tools/venv/bin/python scripts/template_matrix.py [--no-lint] [template.yaml]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cfnlint.decode import decode

NOVALUE = object()
PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "certbound-test",
    "AWS::URLSuffix": "amazonaws.com",
}
# Resources SAM generates from AWS::Serverless::Api / HttpApi that the
# template may name as <Api>.Stage.
SAM_STAGE = {"CertboundRestApi": "live", "CertboundHttpApi": "$default"}

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:certbound/x-AbC123"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ops-alarms"
WEBACL_ARN = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/certbound/0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
ORIGIN = "https://app.example.com"
CIDRS = "203.0.113.0/24,2001:db8::/32"

REQUIRED = {
    "DomainName": "api.example.com",
    "CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-123456789abc",
    "TruststoreUri": "s3://certbound-truststore/truststore.pem",
}
BACKENDS = {
    "authlete": {"AuthleteServiceApiKey": "1234", "ApiSecretArn": SECRET_ARN},
    "rfc7662": {
        "IntrospectionEndpoint": "https://as.example.com/introspect",
        "IntrospectionClientId": "certbound",
        "ApiSecretArn": SECRET_ARN,
    },
    "jwt": {"JwtIssuer": "https://as.example.com", "JwtAudience": "https://api.example.com"},
    "cognito": {},
}
# Every optional feature on (REST_ONLY ones dropped for ApiType=HTTP).
ALL_ON = {
    "Metrics": "on",
    "AlarmEmail": "ops@example.com",
    "AlarmTopicArn": TOPIC_ARN,
    "ReservedConcurrency": "50",
    "StageThrottleRateLimit": "100",
    "StageThrottleBurstLimit": "200",
    "UsagePlan": "on",
    "UsagePlanQuotaLimit": "100000",
    "CorsAllowedOrigins": ORIGIN,
    "WebAclArn": WEBACL_ARN,
    "AllowedSourceCidrs": CIDRS,
}
ALL_OFF = {"Metrics": "off"}
REST_ONLY = ("UsagePlan", "UsagePlanQuotaLimit", "WebAclArn", "AllowedSourceCidrs")
# One feature at a time (on top of the defaults).
SINGLE = {
    "metrics-off": {"Metrics": "off"},
    "namespace": {"MetricsNamespace": "certbound/prod"},
    "alarm-email": {"AlarmEmail": "ops@example.com"},
    "alarm-topic": {"AlarmTopicArn": TOPIC_ARN},
    "alarm-email+topic": {"AlarmEmail": "ops@example.com", "AlarmTopicArn": TOPIC_ARN},
    "reserved-concurrency": {"ReservedConcurrency": "25"},
    "stage-rate": {"StageThrottleRateLimit": "50.5"},
    "stage-burst": {"StageThrottleBurstLimit": "80"},
    "usage-plan": {"UsagePlan": "on"},
    "usage-plan+quota": {"UsagePlan": "on", "UsagePlanQuotaLimit": "1000", "UsagePlanQuotaPeriod": "DAY"},
    "cors": {"CorsAllowedOrigins": ORIGIN},
    "cors-localhost": {"CorsAllowedOrigins": "http://localhost:8080"},
    "waf": {"WebAclArn": WEBACL_ARN},
    "cidrs": {"AllowedSourceCidrs": CIDRS},
    "json-logs": {"LogFormat": "JSON"},
    "json-logs-debug": {"LogFormat": "JSON", "LogLevel": "debug"},
    "json-logs-warn-no-metrics": {"LogFormat": "JSON", "LogLevel": "warn", "Metrics": "off"},
}
# The full product of the operating options, each off or on (REST: 2^11,
# HTTP: the 8 that exist there, 2^8), with Backend=authlete.
PRODUCT = {
    "Metrics": ("off", "on"),
    "AlarmEmail": ("", "ops@example.com"),
    "AlarmTopicArn": ("", TOPIC_ARN),
    "ReservedConcurrency": ("0", "25"),
    "StageThrottleRateLimit": ("0", "100"),
    "StageThrottleBurstLimit": ("0", "200"),
    "UsagePlanQuotaLimit": ("0", "1000"),
    "CorsAllowedOrigins": ("", ORIGIN),
    "UsagePlan": ("off", "on"),
    "WebAclArn": ("", WEBACL_ARN),
    "AllowedSourceCidrs": ("", CIDRS),
}

# Parameter values the template must refuse (parameter constraints).
BAD_VALUES = [
    ("CorsAllowedOrigins", "*"),
    ("CorsAllowedOrigins", "https://a.example.com,https://b.example.com"),
    ("CorsAllowedOrigins", "https://App.example.com"),
    ("CorsAllowedOrigins", "https://app.example.com/"),
    ("CorsAllowedOrigins", "http://app.example.com"),
    ("AllowedSourceCidrs", "203.0.113.0/24, 198.51.100.0/24"),
    ("AllowedSourceCidrs", "203.0.113.7"),
    ("AlarmEmail", "a@example.com,b@example.com"),
    ("AlarmTopicArn", "ops-alarms"),
    ("WebAclArn", "arn:aws:wafv2:us-east-1:123456789012:global/webacl/x/0f1e"),
    ("MetricsNamespace", "with space"),
    ("ReservedConcurrency", "-1"),
    ("Metrics", "yes"),
]

GATEWAY_RESPONSES = (
    "UNAUTHORIZED",
    "ACCESS_DENIED",
    "AUTHORIZER_FAILURE",
    "AUTHORIZER_CONFIGURATION_ERROR",
    "DEFAULT_4XX",
    "DEFAULT_5XX",
)


class Fail(Exception):
    pass


def plain(node):
    """cfn-lint's node types -> plain dict/list/str."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


class Renderer:
    def __init__(self, tpl: dict, params: dict[str, str]):
        self.tpl = tpl
        self.params = params
        self.cond_cache: dict[str, bool] = {}
        self.errors: list[str] = []
        self.exists: set[str] = set()

    # -- conditions and rules ------------------------------------------------
    def value(self, x):
        if isinstance(x, dict) and len(x) == 1:
            (k, v), = x.items()
            if k == "Ref":
                if v in self.params:
                    return self.params[v]
                if v in PSEUDO:
                    return PSEUDO[v]
                raise Fail(f"Ref {v} in a condition")
            if k == "Fn::Equals":
                a, b = (self.value(i) for i in v)
                return str(a) == str(b)
            if k == "Fn::Not":
                return not self.value(v[0])
            if k == "Fn::And":
                return all(self.value(i) for i in v)
            if k == "Fn::Or":
                return any(self.value(i) for i in v)
            if k == "Condition":
                return self.cond(v)
            if k == "Fn::Contains":
                lst, item = v
                return str(self.value(item)) in [str(self.value(i)) for i in lst]
            raise Fail(f"unsupported function in a condition: {k}")
        return x

    def cond(self, name: str) -> bool:
        if name not in self.cond_cache:
            if name not in self.tpl["Conditions"]:
                raise Fail(f"unknown condition {name}")
            self.cond_cache[name] = bool(self.value(self.tpl["Conditions"][name]))
        return self.cond_cache[name]

    def rules(self) -> list[str]:
        failed = []
        for name, rule in self.tpl.get("Rules", {}).items():
            if "RuleCondition" in rule and not self.value(rule["RuleCondition"]):
                continue
            for a in rule["Assertions"]:
                if not self.value(a["Assert"]):
                    failed.append(f"{name}: {' '.join(a['AssertDescription'].split())}")
        return failed

    # -- resolution ----------------------------------------------------------
    def ref_ok(self, name: str, where: str):
        if name in self.params or name in PSEUDO:
            return
        base = name.split(".", 1)[0]
        if base not in self.exists:
            self.errors.append(f"{where}: refers to {name}, which does not exist here")

    def sub(self, text: str, variables: dict, where: str) -> str:
        def repl(m):
            inner = m.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                return str(variables[inner])
            if inner in self.params:
                return self.params[inner]
            if inner in PSEUDO:
                return PSEUDO[inner]
            self.ref_ok(inner, where)
            base, _, attr = inner.partition(".")
            if attr == "Stage" and base in SAM_STAGE:
                return SAM_STAGE[base]
            if attr:
                return f"<{base}.{attr}>"
            return f"<{base}>"

        return re.sub(r"\$\{([^}]*)\}", repl, text)

    def resolve(self, x, where: str):
        if isinstance(x, list):
            out = [self.resolve(i, where) for i in x]
            return [i for i in out if i is not NOVALUE]
        if not isinstance(x, dict):
            return x
        if len(x) == 1:
            (k, v), = x.items()
            if k == "Ref":
                if v == "AWS::NoValue":
                    return NOVALUE
                if v in self.params:
                    return self.params[v]
                if v in PSEUDO:
                    return PSEUDO[v]
                self.ref_ok(v, where)
                base, _, attr = v.partition(".")
                if attr == "Stage" and base in SAM_STAGE:
                    return SAM_STAGE[base]
                return f"<{v}>"
            if k == "Fn::If":
                name, yes, no = v
                return self.resolve(yes if self.cond(name) else no, where)
            if k == "Fn::GetAtt":
                name, attr = v if isinstance(v, list) else v.split(".", 1)
                self.ref_ok(name, where)
                return f"<{name}.{attr}>"
            if k == "Fn::Sub":
                if isinstance(v, str):
                    return self.sub(v, {}, where)
                text, variables = v
                variables = {n: self.resolve(val, where) for n, val in variables.items()}
                return self.sub(text, variables, where)
            if k == "Fn::Split":
                sep, s = v
                return self.resolve(s, where).split(sep)
            if k == "Fn::Select":
                i, lst = v
                return self.resolve(lst, where)[int(self.resolve(i, where))]
            if k == "Fn::FindInMap":
                m, top, second = (self.resolve(i, where) for i in v)
                try:
                    return self.tpl["Mappings"][m][top][second]
                except KeyError:
                    raise Fail(f"{where}: FindInMap {m}/{top}/{second} not in the mappings")
            if k == "Fn::Join":
                sep, lst = v
                return sep.join(str(i) for i in self.resolve(lst, where))
            if k.startswith("Fn::") or k == "Condition":
                raise Fail(f"{where}: unsupported function {k}")
        out = {}
        for k, v in x.items():
            r = self.resolve(v, f"{where}.{k}")
            if r is not NOVALUE:
                out[k] = r
        return out

    def render(self) -> dict:
        res = {}
        for name, r in self.tpl["Resources"].items():
            if "Condition" not in r or self.cond(r["Condition"]):
                self.exists.add(name)
        for name in self.exists:
            r = self.tpl["Resources"][name]
            deps = r.get("DependsOn", [])
            for d in [deps] if isinstance(deps, str) else deps:
                self.ref_ok(d, f"{name}.DependsOn")
            res[name] = {"Type": r["Type"], "Properties": self.resolve(r.get("Properties", {}), name)}
            for key in ("Metadata", "DeletionPolicy", "UpdateReplacePolicy"):
                if key in r:
                    res[name][key] = r[key]
        outputs = {}
        for name, o in self.tpl.get("Outputs", {}).items():
            if "Condition" in o and not self.cond(o["Condition"]):
                continue
            outputs[name] = {k: self.resolve(v, f"Outputs.{name}") for k, v in o.items() if k != "Condition"}
        return {"Resources": res, "Outputs": outputs}


def check_params(tpl: dict, overrides: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    params, bad = {}, []
    for name, p in tpl["Parameters"].items():
        if name in overrides:
            v = overrides[name]
        elif "Default" in p:
            v = str(p["Default"])
        else:
            bad.append(f"{name}: no value")
            continue
        if "AllowedValues" in p and v not in [str(a) for a in p["AllowedValues"]]:
            bad.append(f"{name}={v!r}: not in AllowedValues")
        if "AllowedPattern" in p and not re.fullmatch(p["AllowedPattern"], v):
            bad.append(f"{name}={v!r}: does not match AllowedPattern")
        if p["Type"] == "Number":
            try:
                n = float(v)
            except ValueError:
                bad.append(f"{name}={v!r}: not a number")
            else:
                if "MinValue" in p and n < float(p["MinValue"]):
                    bad.append(f"{name}={v!r}: below MinValue")
                if "MaxValue" in p and n > float(p["MaxValue"]):
                    bad.append(f"{name}={v!r}: above MaxValue")
        params[name] = v
    unknown = set(overrides) - set(tpl["Parameters"])
    if unknown:
        bad.append(f"unknown parameters {sorted(unknown)}")
    return params, bad


def expect(cond: bool, msg: str, errors: list[str]):
    if not cond:
        errors.append(msg)


def check(params: dict[str, str], out: dict) -> list[str]:
    """What this combination must deploy (the expectations, from the parameters)."""
    e: list[str] = []
    res = out["Resources"]
    rest = params["ApiType"] == "REST"
    metrics = params["Metrics"] == "on"
    email, topic = params["AlarmEmail"], params["AlarmTopicArn"]
    usage = rest and params["UsagePlan"] == "on"
    cors = params["CorsAllowedOrigins"]
    rate, burst = params["StageThrottleRateLimit"], params["StageThrottleBurstLimit"]
    secret = params["Backend"] in ("authlete", "rfc7662") or usage

    def has(name, want=True):
        expect((name in res) == want, f"resource {name} {'missing' if want else 'present'}", e)

    has("CertboundRestApi", rest)
    has("CertboundHttpApi", not rest)
    has("AlarmTopic", bool(email) and not topic)
    has("AlarmEmailSubscription", bool(email))
    has("AuthorizerErrorsAlarm")
    has("AuthorizerThrottlesAlarm")
    has("AsFailureRateAlarm", metrics)
    has("AsLatencyP99Alarm", metrics)
    has("OperatingDashboard")
    has("RestUsagePlan", usage)
    has("RestWebAclAssociation", rest and bool(params["WebAclArn"]))

    # The function.
    fn = res["CertboundAuthorizerFunction"]["Properties"]
    env = fn["Environment"]["Variables"]
    logging = fn["LoggingConfig"]
    json_logs = params["LogFormat"] == "JSON"
    expect(logging.get("LogFormat") == params["LogFormat"], "LoggingConfig.LogFormat", e)
    expect(
        logging.get("ApplicationLogLevel") == (params["LogLevel"].upper() if json_logs else None),
        "LoggingConfig.ApplicationLogLevel from LogLevel with JSON only",
        e,
    )
    expect(env.get("CERTBOUND_METRICS") == params["Metrics"], "CERTBOUND_METRICS", e)
    expect(env.get("CERTBOUND_METRICS_NAMESPACE") == params["MetricsNamespace"], "CERTBOUND_METRICS_NAMESPACE", e)
    expect("CERTBOUND_USAGE_KEYS" not in env, "CERTBOUND_USAGE_KEYS must come from the secret, not the environment", e)
    rc = params["ReservedConcurrency"]
    expect(fn.get("ReservedConcurrentExecutions") == (rc if rc != "0" else None), "ReservedConcurrentExecutions", e)
    expect(bool(fn["Layers"]) == secret, "extension layer iff a secret is read", e)
    expect((env.get("CERTBOUND_SECRET_ID") == params["ApiSecretArn"]) if secret else "CERTBOUND_SECRET_ID" not in env,
           "CERTBOUND_SECRET_ID iff a secret is read", e)
    expect(bool(fn.get("Policies")) == secret, "secret policy iff a secret is read", e)

    # Alarms: actions iff a topic; every alarm treats missing data as fine.
    want_topic = topic or ("<AlarmTopic>" if email else None)
    for name in ("AuthorizerErrorsAlarm", "AuthorizerThrottlesAlarm", "AsFailureRateAlarm", "AsLatencyP99Alarm"):
        if name not in res:
            continue
        a = res[name]["Properties"]
        expect(a.get("AlarmActions") == ([want_topic] if want_topic else None), f"{name}.AlarmActions", e)
        expect(a.get("OKActions") == ([want_topic] if want_topic else None), f"{name}.OKActions", e)
        expect(a.get("TreatMissingData") == "notBreaching", f"{name}.TreatMissingData", e)
        expect(len(a.get("AlarmDescription", "")) <= 1024, f"{name}.AlarmDescription longer than 1024", e)
        for m in a.get("Metrics", []):
            ms = m.get("MetricStat")
            if ms and ms["Metric"]["Namespace"] not in ("AWS/Lambda", params["MetricsNamespace"]):
                e.append(f"{name}: namespace {ms['Metric']['Namespace']}")
    if "AlarmEmailSubscription" in res:
        sub = res["AlarmEmailSubscription"]["Properties"]
        expect(sub["TopicArn"] == (topic or "<AlarmTopic>"), "subscription topic", e)
    if "AsFailureRateAlarm" in res:
        expect(str(res["AsFailureRateAlarm"]["Properties"]["Threshold"]) == params["AsFailureRatePercent"], "AS failure threshold", e)
    if "AsLatencyP99Alarm" in res:
        a = res["AsLatencyP99Alarm"]["Properties"]
        expect(a.get("ExtendedStatistic") == "p99" and str(a["Threshold"]) == params["AsLatencyP99Ms"], "p99 alarm", e)

    # Example backend: adds CORS headers itself on REST.
    benv = res["ExampleBackendFunction"]["Properties"].get("Environment", {}).get("Variables", {})
    expect(benv.get("CORS_ALLOW_ORIGIN") == (cors if (rest and cors) else None), "example backend CORS_ALLOW_ORIGIN", e)

    if rest:
        api = res["CertboundRestApi"]["Properties"]
        body = api["DefinitionBody"]
        expect(api.get("AlwaysDeploy") is True, "REST AlwaysDeploy", e)
        expect(api.get("DisableExecuteApiEndpoint") is True, "REST DisableExecuteApiEndpoint", e)
        expect(api.get("ApiKeySourceType") == ("AUTHORIZER" if usage else "HEADER"), "ApiKeySourceType", e)
        expect(api["Auth"]["Authorizers"]["CertboundAuthorizer"]["Identity"]["ReauthorizeEvery"] == 0, "authorizer cache off", e)
        expect(api["Auth"].get("AddDefaultAuthorizerToCorsPreflight") is False, "no authorizer on OPTIONS", e)
        path = body["paths"]["/example"]
        for m in ("get", "post"):
            sec = path[m].get("security", [])
            expect(({"api_key": []} in sec) == usage, f"{m}: api_key required iff UsagePlan", e)
        opt = path.get("options")
        expect((opt is not None) == bool(cors), "OPTIONS iff CORS", e)
        if opt is not None:
            integ = opt["x-amazon-apigateway-integration"]
            expect(integ["type"] == "mock", "OPTIONS is a MOCK", e)
            expect("security" not in opt, "OPTIONS has no security (no authorizer, no API key)", e)
            rp = integ["responses"]["default"]["responseParameters"]
            expect(rp.get("method.response.header.Access-Control-Allow-Origin") == f"'{cors}'", "OPTIONS ACAO", e)
            expect(rp.get("method.response.header.Access-Control-Allow-Credentials") == "'true'", "OPTIONS ACAC", e)
            declared = set(opt["responses"]["204"]["headers"])
            for k in rp:
                expect(k.rsplit(".", 1)[1] in declared, f"OPTIONS header {k} not declared in the method response", e)
        # Always a policy (so that switching the option off replaces it): the
        # Allow alone, plus the Deny outside AllowedSourceCidrs when set.
        pol = body.get("x-amazon-apigateway-policy") or {"Statement": []}
        cidrs = params["AllowedSourceCidrs"]
        effects = [s["Effect"] for s in pol["Statement"]]
        expect(effects == (["Allow", "Deny"] if cidrs else ["Allow"]), "policy: Allow (+ Deny iff AllowedSourceCidrs)", e)
        allow = pol["Statement"][0] if pol["Statement"] else {}
        expect(allow.get("Principal") == "*" and "Condition" not in allow, "policy: the Allow is unconditional", e)
        if cidrs and len(effects) == 2:
            deny = pol["Statement"][1]
            expect(deny["Condition"]["NotIpAddress"]["aws:SourceIp"] == cidrs.split(","), "policy: NotIpAddress = the CIDRs", e)
        gw = api["GatewayResponses"]
        for name in GATEWAY_RESPONSES:
            h = gw.get(name, {}).get("ResponseParameters", {}).get("Headers", {})
            expect(name in gw, f"gateway response {name}", e)
            expect(h.get("Access-Control-Allow-Origin") == (f"'{cors}'" if cors else None), f"{name}: ACAO iff CORS", e)
            expect(h.get("Access-Control-Allow-Credentials") == ("'true'" if cors else None), f"{name}: ACAC iff CORS", e)
        ms = api.get("MethodSettings", [])
        if rate != "0" or burst != "0":
            expect(len(ms) == 1 and ms[0]["ResourcePath"] == "/*" and ms[0]["HttpMethod"] == "*", "MethodSettings /* *", e)
            if ms:
                expect(ms[0].get("ThrottlingRateLimit") == (rate if rate != "0" else None), "REST rate", e)
                expect(ms[0].get("ThrottlingBurstLimit") == (burst if burst != "0" else None), "REST burst", e)
        else:
            expect(ms == [], "no MethodSettings without throttling", e)
        if usage:
            up = res["RestUsagePlan"]["Properties"]
            expect(up["ApiStages"] == [{"ApiId": "<CertboundRestApi>", "Stage": "live"}], "usage plan bound to the stage", e)
            expect(up["Throttle"] == {"RateLimit": params["UsagePlanRateLimit"], "BurstLimit": params["UsagePlanBurstLimit"]}, "usage plan throttle", e)
            q = params["UsagePlanQuotaLimit"]
            expect(up.get("Quota") == ({"Limit": q, "Period": params["UsagePlanQuotaPeriod"]} if q != "0" else None), "usage plan quota", e)
        if "RestWebAclAssociation" in res:
            w = res["RestWebAclAssociation"]["Properties"]
            expect(w["ResourceArn"] == "arn:aws:apigateway:us-east-1::/restapis/<CertboundRestApi>/stages/live", "WAF stage ARN", e)
            expect(w["WebACLArn"] == params["WebAclArn"], "WAF web ACL", e)
    else:
        api = res["CertboundHttpApi"]["Properties"]
        body = api["DefinitionBody"]
        c = body.get("x-amazon-apigateway-cors")
        expect((c is not None) == bool(cors), "HTTP CORS iff CorsAllowedOrigins", e)
        if c:
            expect(c["allowOrigins"] == [cors] and c["allowCredentials"] is True, "HTTP CORS origin + credentials", e)
            expect("authorization" in c["allowHeaders"], "HTTP CORS allows Authorization", e)
        expect("options" not in body["paths"]["/example"], "HTTP: no OPTIONS route (the gateway answers)", e)
        drs = api.get("DefaultRouteSettings", {})
        expect(drs.get("ThrottlingRateLimit") == (rate if rate != "0" else None), "HTTP rate", e)
        expect(drs.get("ThrottlingBurstLimit") == (burst if burst != "0" else None), "HTTP burst", e)

    outs = out["Outputs"]
    expect(("UsagePlanId" in outs) == usage, "output UsagePlanId iff UsagePlan", e)
    expect(outs.get("AlarmNotificationTopicArn", {}).get("Value") == want_topic, "output AlarmNotificationTopicArn", e)
    expect(outs["DashboardUrl"]["Value"].endswith("#dashboards:name=<OperatingDashboard>"), "output DashboardUrl", e)

    # The dashboard body: valid JSON, every ${} resolved, the widgets there.
    raw = res["OperatingDashboard"]["Properties"]["DashboardBody"]
    leftover = [m for m in re.findall(r"\$\{[^}]*\}", raw) if not m.startswith("${PROP(")]
    expect(not leftover, f"dashboard: unresolved {leftover}", e)
    try:
        dash = json.loads(raw)
    except json.JSONDecodeError as err:
        e.append(f"dashboard is not JSON: {err}")
        return e
    widgets = dash["widgets"]
    titles = [w["properties"].get("title", "") for w in widgets]
    for t in ("Decisions by verdict", "Refusals by reason", "Authorization server latency (ms)",
              "Authorization server calls and failures by kind", "Cache hit ratio (%)",
              "Authorizer duration (ms)", "Alarms"):
        expect(t in titles, f"dashboard widget {t!r}", e)
    expect(any(t.startswith("API Gateway (REST" if rest else "API Gateway (HTTP") for t in titles), "dashboard API widgets", e)
    alarms = next(w for w in widgets if w["type"] == "alarm")["properties"]["alarms"]
    expect(len(alarms) == (4 if metrics else 2), "dashboard alarm list", e)
    for w in widgets:
        x, y, wd, ht = (w[k] for k in ("x", "y", "width", "height"))
        expect(0 <= x and x + wd <= 24, f"dashboard widget {w['properties'].get('title')} outside the grid", e)
        if w["type"] == "metric":
            p = w["properties"]
            expect(p.get("region") == "us-east-1", "dashboard widget region", e)
            for m in p["metrics"]:
                if isinstance(m[0], str):
                    expect(m[0] in ("AWS/Lambda", "AWS/ApiGateway", params["MetricsNamespace"]), f"dashboard namespace {m[0]}", e)
                    if m[0] == "AWS/Lambda":
                        expect(m[3] == "<CertboundAuthorizerFunction>", "dashboard Lambda dimension", e)
    search = json.dumps(widgets)
    expect(f'{{\\"{params["MetricsNamespace"]}\\",Verdict,Reason}}' in search, "dashboard SEARCH over Verdict,Reason", e)
    return e


def combinations():
    """(name, overrides, expected Rule failures (substrings))"""
    out = []
    for api in ("REST", "HTTP"):
        for backend, bp in BACKENDS.items():
            base = {**REQUIRED, "ApiType": api, "Backend": backend, **bp}
            out.append((f"{api}/{backend}/defaults", base, []))
            out.append((f"{api}/{backend}/all-off", {**base, **ALL_OFF}, []))
            on = dict(ALL_ON)
            if api == "HTTP":
                on = {k: v for k, v in on.items() if k not in REST_ONLY}
            elif "ApiSecretArn" not in bp:
                on["ApiSecretArn"] = SECRET_ARN  # usage keys live in the secret
            out.append((f"{api}/{backend}/all-on", {**base, **on}, []))
        base = {**REQUIRED, "ApiType": api, **BACKENDS["authlete"]}
        for name, o in SINGLE.items():
            refused = []
            if api == "HTTP" and ("UsagePlan" in o or "WebAclArn" in o or "AllowedSourceCidrs" in o):
                refused = ["RestOnlyOptions"]
            out.append((f"{api}/authlete/{name}", {**base, **o}, refused))
    # Every option on or off, all at once.
    for api in ("REST", "HTTP"):
        names = [n for n in PRODUCT if api == "REST" or n not in REST_ONLY or n == "UsagePlanQuotaLimit"]
        base = {**REQUIRED, "ApiType": api, **BACKENDS["authlete"]}
        for bits in itertools.product((0, 1), repeat=len(names)):
            o = {n: PRODUCT[n][b] for n, b in zip(names, bits)}
            out.append((f"{api}/authlete/product/{''.join(map(str, bits))}", {**base, **o}, []))
    # JSON logs above INFO would drop the EMF documents: refused with metrics on.
    for api in ("REST", "HTTP"):
        base = {**REQUIRED, "ApiType": api, **BACKENDS["authlete"]}
        for level in ("warn", "error"):
            out.append((f"{api}/authlete/json-logs-{level}-metrics", {**base, "LogFormat": "JSON", "LogLevel": level}, ["MetricsNeedInfoLogs"]))
    # Usage plan with a backend that has no secret otherwise.
    for backend in ("jwt", "cognito"):
        base = {**REQUIRED, "ApiType": "REST", "Backend": backend, **BACKENDS[backend]}
        out.append((f"REST/{backend}/usage-plan+secret", {**base, "UsagePlan": "on", "ApiSecretArn": SECRET_ARN}, []))
        out.append((f"REST/{backend}/usage-plan-without-secret", {**base, "UsagePlan": "on"}, ["UsagePlanSettings"]))
    return out


def lint_rendered(tpl: dict, renders: dict[str, dict], cfn_lint: str) -> list[str]:
    """cfn-lint the resolved templates (no Parameters, Conditions or Rules left)."""
    errors = []
    with tempfile.TemporaryDirectory() as d:
        files = []
        for name, out in renders.items():
            doc = {
                "AWSTemplateFormatVersion": tpl["AWSTemplateFormatVersion"],
                "Transform": tpl["Transform"],
                "Resources": out["Resources"],
                "Outputs": out["Outputs"],
            }
            # Placeholders for resource attributes: keep them as real references.
            text = json.dumps(doc, indent=1)
            text = re.sub(r'"<([A-Za-z0-9]+)\.([A-Za-z0-9.]+)>"', r'{"Fn::GetAtt": ["\1", "\2"]}', text)
            text = re.sub(r'"<([A-Za-z0-9]+)>"', r'{"Ref": "\1"}', text)
            f = Path(d) / (name.replace("/", "_") + ".json")
            f.write_text(text)
            files.append(str(f))
        r = subprocess.run([cfn_lint, *files], capture_output=True, text=True)
        if r.returncode != 0:
            errors.append("cfn-lint on the resolved templates:\n" + r.stdout + r.stderr)
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("template", nargs="?", default="template.yaml")
    ap.add_argument("--no-lint", action="store_true", help="skip cfn-lint on the resolved templates")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    t0 = time.monotonic()
    tpl, matches = decode(args.template)
    if matches:
        print("\n".join(str(m) for m in matches))
        return 1
    tpl = plain(tpl)

    failures = 0
    renders = {}
    combos = combinations()
    for name, overrides, refused in combos:
        params, bad = check_params(tpl, overrides)
        errors = [f"parameter {b}" for b in bad]
        if not bad:
            r = Renderer(tpl, params)
            try:
                failed = r.rules()
                for want in refused:
                    if not any(f.startswith(want + ":") for f in failed):
                        errors.append(f"should be refused by Rule {want}")
                for f in failed:
                    if not any(f.startswith(w + ":") for w in refused):
                        errors.append(f"refused unexpectedly: {f}")
                if not refused:
                    out = r.render()
                    errors += r.errors
                    errors += check(params, out)
                    if name in ("REST/authlete/all-on", "HTTP/authlete/all-on"):
                        renders[name] = out
            except Fail as err:
                errors.append(str(err))
        status = "refused as expected" if refused and not errors else ("ok" if not errors else "FAIL")
        if errors:
            failures += 1
        if errors or args.verbose:
            print(f"{name}: {status}")
            for err in errors:
                print(f"  - {err}")

    # Values the parameter constraints must refuse.
    for pname, v in BAD_VALUES:
        _, bad = check_params(tpl, {**REQUIRED, **BACKENDS["authlete"], pname: v})
        if not any(b.startswith(f"{pname}=") for b in bad):
            failures += 1
            print(f"parameter {pname}={v!r}: accepted, should be refused")

    if not args.no_lint:
        here = Path(__file__).resolve().parent.parent
        cfn_lint = os.environ.get("CFN_LINT") or str(here / ".tools/venv/bin/cfn-lint")
        if not Path(cfn_lint).exists():
            cfn_lint = str(Path(sys.executable).parent / "cfn-lint")
        for err in lint_rendered(tpl, renders, cfn_lint):
            failures += 1
            print(err)

    dt = time.monotonic() - t0
    print(f"template matrix: {len(combos)} combinations, {len(BAD_VALUES)} refused values"
          f"{', cfn-lint on ' + str(len(renders)) + ' resolved' if not args.no_lint else ''}: "
          f"{'all ok' if not failures else f'{failures} FAILED'} ({dt:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

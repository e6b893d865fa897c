#!/usr/bin/env python3
"""Write an API Gateway REST (v1) REQUEST authorizer event for `certbound invoke`.

usage: make-event.py TOKEN CERT_PEM_FILE METHOD PATH OUTPUT

  TOKEN          access token sent as "Authorization: Bearer TOKEN" ("" = no header)
  CERT_PEM_FILE  client certificate placed in requestContext.identity.clientCert
                 ("" or "-" = no client certificate, as without mTLS)
  METHOD PATH    e.g. GET /example (goes into methodArn, httpMethod, path)
  OUTPUT         file to write ("-" = stdout)

Standard library only. The certificate's subject, issuer, serial and validity
are read with the openssl command when it is available (API Gateway always
sends them; aws_lambda_events requires `validity`), else placeholders are used.
"""

import json
import subprocess
import sys
import uuid

ACCOUNT = "123456789012"
API_ID = "abcdef123"
STAGE = "prod"
REGION = "us-east-1"
DOMAIN = "api.example.com"


def cert_fields(pem):
    fields = {
        "subjectDN": "",
        "issuerDN": "",
        "serialNumber": "1",
        "validity": {"notBefore": "May 28 12:30:02 2019 GMT", "notAfter": "Aug  5 09:36:04 2031 GMT"},
    }
    try:
        out = subprocess.run(
            ["openssl", "x509", "-noout", "-nameopt", "RFC2253",
             "-subject", "-issuer", "-serial", "-startdate", "-enddate"],
            input=pem, capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return fields
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key == "subject":
            fields["subjectDN"] = value.strip()
        elif key == "issuer":
            fields["issuerDN"] = value.strip()
        elif key == "serial":
            fields["serialNumber"] = value.strip()
        elif key == "notBefore":
            fields["validity"]["notBefore"] = value.strip()
        elif key == "notAfter":
            fields["validity"]["notAfter"] = value.strip()
    return fields


def main(argv):
    if len(argv) != 6:
        sys.stderr.write(__doc__)
        return 2
    token, cert_file, method, path, output = argv[1:]
    method = method.upper()
    if not path.startswith("/"):
        path = "/" + path

    headers = {"Host": DOMAIN, "User-Agent": "certbound-e2e", "X-Forwarded-Proto": "https"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    identity = {"sourceIp": "127.0.0.1", "userAgent": "certbound-e2e"}
    if cert_file and cert_file != "-":
        with open(cert_file, encoding="ascii") as f:
            pem = f.read()
        identity["clientCert"] = {"clientCertPem": pem, **cert_fields(pem)}

    event = {
        "type": "REQUEST",
        "methodArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{STAGE}/{method}{path}",
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {},
        "multiValueQueryStringParameters": {},
        "pathParameters": {},
        "stageVariables": {},
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "domainName": DOMAIN,
            "identity": identity,
        },
    }
    text = json.dumps(event, indent=2) + "\n"
    if output == "-":
        sys.stdout.write(text)
    else:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

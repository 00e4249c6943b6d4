-- wrk script: POST a small body (async invocations).
wrk.method = "POST"
wrk.body   = "{\"event\":1}"
wrk.headers["Content-Type"] = "application/json"

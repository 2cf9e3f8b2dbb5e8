"""`make bench`: the provider's performance model (DESIGN.md) measured side by side with the stock Google provider,
in one run, against the local emulated clouds (no internet). Standard library + the project venv only.

(i)   exchanges per 50 hook instantiations in one process: a `gcp_wif` connection vs a stock
      `google_cloud_platform` connection whose `credential_config_file` is an external-account (AWS, environment
      credential source) file. Counted from the emulator's STS log. Goal: 1 for ours.
(ii)  warm `get_credentials_and_project_id()` + `before_request()` cost vs the stock service-account key path (a
      generated key, its token primed by hand so nothing touches the network). Interleaved batches, median ratio.
      Goal: <= 1.05x.
(iii) cold first-token time with 50 ms injected on every STS and IAM Credentials answer vs the floor: those
      2 x 50 ms, plus the emulated servers' own processing (their `server_ms`), plus one AssumeRole round trip (the
      AWS connection assumes a role: DESIGN.md counts that hop). The rest is our overhead. Goal: <= 1.15x. The
      client thread's CPU time per cold token is split into botocore's session/client set-up (AwsBaseHook's two
      sessions and its STS client, timed alone), Airflow's secrets masker (timed where it runs: the secrets we
      announce and the connections the hooks read) and the rest; on a busy machine the wall-clock ratio mostly
      measures the other processes, (floor + CPU) / floor does not.
      The emulated clouds (Google's servers; moto is its child) run in a process of their own for the whole bench,
      started with `python -m airflow_provider_gcp_wif.testing` and driven over HTTP (`EmulatorControl`): real
      Google servers are not in a task's process. Run as threads of the bench's process, their handlers would
      compete with the client thread for the GIL while the floor already counts their time (`server_ms`), so the
      cold path paid for them twice. The floor's definition is unchanged; the emulator process's CPU per cold token
      is reported beside it (`cold_token_emulator_process_cpu_ms`, informative).
      Each cold run starts from the secrets masker of a fresh task process: the patterns it held when this process
      had imported Airflow and the plugin, before (i) and (ii). By (iii) this long-lived process has taught the
      masker every secret of the earlier phases, and the masker recompiles one expression of all its patterns for
      each new secret, so its cost grows with the process's age; a task's first token never sees that. That cost is
      reported as its own number: LONG_LIVED_RUNS more cold tokens from the masker state (iii) found
      (`cold_token_long_lived_ms`, `cold_token_cpu_ms.airflow_masker_long_lived`, `masker_patterns`).
(iv)  plugin activation at task start: `import airflow` first, then time `import airflow_provider_gcp_wif.plugin`
      in a fresh interpreter, median of N; the modules it adds are listed. Goal: < 20 ms.
(v)   task start: fresh interpreters doing what a task does (import Airflow + the plugin, build a `GCSHook`, list
      the bucket: the first authorized request to emulated Storage), 50 ms injected on every Google hop (STS,
      IAM Credentials, OAuth, Resource Manager, Storage). Four ways to authenticate: `gcp_wif` with
      `[gcp_wif] token_cache = process` (the default) and `= host`, the stock service-account key (an emulator-
      issued key; JWT-bearer grant at the emulated OAuth endpoint) and the stock external-account file (google-auth
      `aws` credential source with the role's credentials in the environment, impersonating the same account).
      TASKS interpreters in sequence (the four ways interleaved, so that the shared machine's load hits them alike)
      and PARALLEL at once per way; each batch starts with an empty host cache. Reported: token exchanges per batch
      (STS exchanges, OAuth grants for the key) and the median time to the first authorized answer, counted from
      the end of the imports every way shares (`import airflow`, the plugin, the GCS hook module: seconds on a
      busy machine, the same for all four, and noisier than the difference) — so building the hook, the
      credentials (and importing what they need), the token and the request are in it. The whole interpreter's
      time from its first line is reported too (`task_start_total_ms`). Goals: 1 exchange per batch with the host
      cache; host / stock key <= 1.0.

Timings are machine dependent; nothing here is asserted by the test suite. The last line is one JSON object.
BENCH_TASKS / BENCH_PARALLEL (default 20 / 8) change the task-start batch sizes, e.g. for a quick look
(`host_cache_exchanges_per_20_tasks` then counts per BENCH_TASKS tasks).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HOOKS = 50
WARM_BATCHES = 15
WARM_ITERATIONS = 2000
COLD_RUNS = 11  # the median of 11: one slow run (a GC pass, a scheduler hiccup) moves it little
LONG_LIVED_RUNS = 3
PLUGIN_RUNS = 7
DELAY = 0.05
TASKS = int(os.environ.get("BENCH_TASKS", "20"))
PARALLEL = int(os.environ.get("BENCH_PARALLEL", "8"))
WAYS = ("process", "host", "stock_key", "stock_external")
WAY_CONN = {"process": "gcp_wif_default", "host": "gcp_wif_default", "stock_key": "gcp_stock_key",
            "stock_external": "gcp_stock_external"}

TASK_PROBE = """
import time
started = time.perf_counter()
import json, os, sys
import airflow
import airflow_provider_gcp_wif.plugin
from airflow.providers.google.cloud.hooks.gcs import GCSHook
if os.environ.get("BENCH_CRM"):  # the stock external-account path looks its project up: the emulated CRM
    import google.auth.external_account
    google.auth.external_account._CLOUD_RESOURCE_MANAGER = os.environ["BENCH_CRM"]
imported = time.perf_counter()
client = GCSHook(gcp_conn_id=os.environ["BENCH_CONN"]).get_conn()
names = [blob.name for blob in client.list_blobs(os.environ["BENCH_BUCKET"], max_results=1)]
done = time.perf_counter()
print(json.dumps({"ms": (done - started) * 1000, "after_imports_ms": (done - imported) * 1000}))
"""

PLUGIN_PROBE = """
import json, sys, time
import airflow
already = "airflow_provider_gcp_wif.plugin" in sys.modules
before = set(sys.modules)
start = time.perf_counter()
import airflow_provider_gcp_wif.plugin
elapsed = time.perf_counter() - start
print(json.dumps({"ms": elapsed * 1000, "already": already, "added": sorted(set(sys.modules) - before)}))
"""


def secrets_masker():
    """Airflow's secrets masker object (3.1+ task SDK's shared one, 3.0 the task SDK's, 2.x the core one)."""
    import importlib

    for name in ("airflow.sdk._shared.secrets_masker.secrets_masker", "airflow.sdk.execution_time.secrets_masker",
                 "airflow.utils.log.secrets_masker"):
        try:
            factory = getattr(importlib.import_module(name), "_secrets_masker", None)
        except ImportError:
            continue
        if factory is not None:
            return factory()
    raise RuntimeError("no Airflow secrets masker found")


def log(message: str) -> None:
    print(message, flush=True)


def sts_count(control) -> int:
    return control.counters().get("sts", 0)


def service_account_key() -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "bench-project", "private_key_id": "bench",
            "private_key": pem, "client_email": "bench@bench-project.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}


def external_account_file(info: dict, directory: str, impersonate: str | None = None) -> str:
    config = {
        "type": "external_account",
        "audience": info["audience"],
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "token_url": info["sts_endpoint"],
        "credential_source": {
            "environment_id": "aws1",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com"
                                              "?Action=GetCallerIdentity&Version=2011-06-15",
        },
    }
    if impersonate:
        config["service_account_impersonation_url"] = (
            f"{info['iam_endpoint'].rstrip('/')}/v1/projects/-/serviceAccounts/{impersonate}:generateAccessToken")
    path = os.path.join(directory, "external-account-impersonating.json" if impersonate else "external-account.json")
    with open(path, "w") as handle:
        json.dump(config, handle)
    return path


def task_start(info: dict, control, home: str) -> dict:
    """(v): the four ways side by side; returns the numbers for the JSON line."""
    import boto3

    # Installed packages have their bytecode (pip compiles it); a task must not recompile Airflow from source.
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith("AIRFLOW__GCP_WIF__TOKEN_CACHE") and k != "PYTHONDONTWRITEBYTECODE"}
    base_env["BENCH_BUCKET"] = info["bucket"]
    # The stock external-account file signs with the role's credentials from the environment (as it would on a
    # host whose environment holds them) and impersonates the same service account as the gcp_wif connection.
    aws_connection = json.loads(info["env"]["AIRFLOW_CONN_AWS_DEFAULT"])
    assumed = boto3.client("sts", region_name=info["aws_region"], endpoint_url=info["aws_endpoint"],
                           aws_access_key_id=aws_connection["login"],
                           aws_secret_access_key=aws_connection["password"]).assume_role(
        RoleArn=info["role_arn"], RoleSessionName="bench-stock")["Credentials"]
    external = external_account_file(info, home, impersonate=info["service_account"])
    key = control.create_service_account_key(info["service_account"])
    crm = info["crm_endpoint"].rstrip("/") + "/v1/projects/"
    ways_env = {
        "process": {},
        "host": {"AIRFLOW__GCP_WIF__TOKEN_CACHE": "host"},
        "stock_key": {"AIRFLOW_CONN_GCP_STOCK_KEY": json.dumps({"conn_type": "google_cloud_platform", "extra": {
            "keyfile_dict": json.dumps(key), "project": info["project_id"]}})},
        "stock_external": {
            "AIRFLOW_CONN_GCP_STOCK_EXTERNAL": json.dumps({"conn_type": "google_cloud_platform", "extra": {
                "credential_config_file": external, "project": info["project_id"]}}),
            "AWS_ACCESS_KEY_ID": assumed["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": assumed["SecretAccessKey"],
            "AWS_SESSION_TOKEN": assumed["SessionToken"], "BENCH_CRM": crm},
    }

    def environment(way: str, cache_dir: str) -> dict:
        return {**base_env, **ways_env[way], "BENCH_CONN": WAY_CONN[way],
                "AIRFLOW__GCP_WIF__TOKEN_CACHE_DIR": cache_dir}

    def exchanges(way: str, counters: dict) -> int:
        return counters.get("oauth2", 0) if way == "stock_key" else counters.get("sts", 0)

    def run(way: str, cache_dir: str, count: int) -> list[dict]:
        processes = [subprocess.Popen([sys.executable, "-c", TASK_PROBE], env=environment(way, cache_dir),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(count)]
        results = []
        for process in processes:
            out, err = process.communicate(timeout=300)
            if process.returncode != 0:
                raise RuntimeError(f"{way} task failed:\n{err[-3000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results

    control.reset()
    control.configure({"allow_anonymous_storage": False})  # the first request must carry a token Storage accepts
    control.inject_faults("*", kinds=["delay"], rate=1.0, delay_seconds=DELAY)
    for way in WAYS:  # warm-up, not counted: bytecode written, files in the page cache
        run(way, tempfile.mkdtemp(prefix=f"gcp-wif-bench-warm-{way}-", dir=home), 1)
    sequential: dict[str, list[dict]] = {way: [] for way in WAYS}
    sequential_exchanges = dict.fromkeys(WAYS, 0)
    cache_dirs = {way: tempfile.mkdtemp(prefix=f"gcp-wif-bench-{way}-", dir=home) for way in WAYS}
    for _ in range(TASKS):
        for way in WAYS:
            before = control.counters()
            sequential[way] += run(way, cache_dirs[way], 1)
            after = control.counters()
            sequential_exchanges[way] += exchanges(way, after) - exchanges(way, before)
    parallel: dict[str, list[dict]] = {}
    parallel_exchanges = {}
    for way in WAYS:
        before = control.counters()
        parallel[way] = run(way, tempfile.mkdtemp(prefix=f"gcp-wif-bench-{way}-", dir=home), PARALLEL)
        parallel_exchanges[way] = exchanges(way, control.counters()) - exchanges(way, before)
    unauthorized = [r for r in control.requests("storage") if r["status"] != 200 or not r.get("principal")
                    or r["principal"] == "anonymous"]
    control.clear_faults()
    if unauthorized:
        raise RuntimeError(f"{len(unauthorized)} Storage requests were not authorized: {unauthorized[:2]}")
    medians = {way: statistics.median(r["after_imports_ms"] for r in sequential[way]) for way in WAYS}
    totals = {way: statistics.median(r["ms"] for r in sequential[way]) for way in WAYS}
    parallel_medians = {way: statistics.median(r["after_imports_ms"] for r in parallel[way]) for way in WAYS}
    ratio = medians["host"] / medians["stock_key"]
    log(f"(v)   task start, {DELAY * 1000:.0f} ms per Google hop; {TASKS} fresh interpreters in sequence per way "
        f"(interleaved), then {PARALLEL} at once per way:")
    for way in WAYS:
        log(f"        {way:15s} exchanges {sequential_exchanges[way]:2d} per {TASKS} in sequence, "
            f"{parallel_exchanges[way]:2d} per {PARALLEL} at once; median to first authorized request "
            f"{medians[way]:7.1f} ms in sequence, {parallel_medians[way]:7.1f} ms at once (whole interpreter "
            f"{totals[way]:7.1f} ms)")
    log(f"        host cache / stock key: {ratio:.3f} (goal <= 1.0); whole interpreter "
        f"{totals['host'] / totals['stock_key']:.3f}")
    return {
        "host_cache_exchanges_per_20_tasks": sequential_exchanges["host"],  # per TASKS (20 unless overridden)
        "host_cache_exchanges_per_8_parallel_tasks": parallel_exchanges["host"],
        "task_start_ms": {way: round(medians[way], 1) for way in WAYS},
        "task_start_total_ms": {way: round(totals[way], 1) for way in WAYS},
        "task_start_parallel_ms": {way: round(parallel_medians[way], 1) for way in WAYS},
        "task_start_exchanges": {way: {"sequential": sequential_exchanges[way], "parallel": parallel_exchanges[way]}
                                 for way in WAYS},
        "task_start_runs": {"sequential": TASKS, "parallel": PARALLEL},
        "host_cache_vs_stock_key_ratio": round(ratio, 3),
    }


class EmulatorProcess:
    """The emulated clouds in a process of their own (`python -m airflow_provider_gcp_wif.testing`), driven over
    HTTP like any other client of the control plane (`EmulatorControl`: configuration, faults, request log with
    `server_ms`, reset). Real Google and AWS servers are not in a task's process: emulated in the bench's own
    process, the Google servers' threads would compete with the client thread for the GIL while the floor already
    counts their handlers' time (`server_ms`), so the cold path would pay for them twice."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.info: dict = {}
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> EmulatorProcess:
        from airflow_provider_gcp_wif.testing import EmulatorControl

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AWS_"))}
        self.process = subprocess.Popen([sys.executable, "-m", "airflow_provider_gcp_wif.testing"], env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
                                        text=True)
        try:
            assert self.process.stdout is not None
            line = self.process.stdout.readline()  # its info line once it serves; EOF if it died
            if not line.strip():
                self._stderr.seek(0)
                raise RuntimeError("the emulator process did not start:\n"
                                   + self._stderr.read().decode(errors="replace")[-3000:])
            self.info = json.loads(line)
        except BaseException:
            self.__exit__()
            raise
        self.control = EmulatorControl(self.info["control_url"])
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: it stops its servers (moto's child too) and exits
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None
        self._stderr.close()


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) another process has used so far, or None where psutil cannot tell."""
    try:
        import psutil

        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    except Exception:  # noqa: BLE001 - informative number only
        return None


def main() -> int:
    home = tempfile.mkdtemp(prefix="gcp-wif-bench-")
    os.environ["AIRFLOW_HOME"] = home
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

    with EmulatorProcess() as emulator:
        info, control = emulator.info, emulator.control
        os.environ.update(info["env"])
        # The stock external-account file reads the fixture user's static keys from the environment.
        os.environ.update({"AWS_ACCESS_KEY_ID": info["aws_access_key_id"],
                           "AWS_SECRET_ACCESS_KEY": info["aws_secret_access_key"],
                           "AWS_REGION": info["aws_region"], "AWS_DEFAULT_REGION": info["aws_region"],
                           "AWS_EC2_METADATA_DISABLED": "true"})
        os.environ["AIRFLOW_CONN_GCP_STOCK_EXTERNAL"] = json.dumps({"conn_type": "google_cloud_platform", "extra": {
            "credential_config_file": external_account_file(info, home), "project": info["project_id"]}})
        os.environ["AIRFLOW_CONN_GCP_STOCK_KEY"] = json.dumps({"conn_type": "google_cloud_platform", "extra": {
            "keyfile_dict": json.dumps(service_account_key()), "project": "bench-project"}})

        import google.auth.external_account
        import google.auth.transport.requests
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        import airflow_provider_gcp_wif.plugin  # noqa: F401 - what every Airflow process does at start-up
        from airflow_provider_gcp_wif import credentials as wif_credentials
        from airflow_provider_gcp_wif import transport as wif_transport

        # What a fresh task's masker holds when its first token comes: what Airflow and the plugin taught it at
        # import (restored before each cold run of (iii)).
        masker = secrets_masker()
        fresh_masker = (set(masker.patterns), masker.replacer)

        # Stock external-account credentials look their project up in Resource Manager: the emulated one.
        crm = info["crm_endpoint"].rstrip("/")
        google.auth.external_account._CLOUD_RESOURCE_MANAGER = crm + ("" if crm.endswith("/v1/projects") else
                                                                       "/v1/projects") + "/"
        request = google.auth.transport.requests.Request()
        url = f"{info['storage_host']}/storage/v1/b/{info['bucket']}/o"

        def authorize(hook) -> dict:
            credentials, _ = hook.get_credentials_and_project_id()
            headers: dict = {}
            credentials.before_request(request, "GET", url, headers)
            return headers

        # (i) exchanges per 50 hooks ------------------------------------------------------------------------
        control.reset()
        wif_credentials.clear_cache()
        for _ in range(HOOKS):
            authorize(GCSHook(gcp_conn_id="gcp_wif_default"))
        ours_exchanges = sts_count(control)
        control.reset()
        for _ in range(HOOKS):
            authorize(GCSHook(gcp_conn_id="gcp_stock_external"))
        stock_exchanges = sts_count(control)
        log(f"(i)   exchanges per {HOOKS} hooks: gcp_wif {ours_exchanges}, stock external-account file "
            f"{stock_exchanges}")

        # (ii) warm cost --------------------------------------------------------------------------------------
        ours_hook = GCSHook(gcp_conn_id="gcp_wif_default")
        authorize(ours_hook)
        stock_hook = GCSHook(gcp_conn_id="gcp_stock_key")
        stock_credentials, _ = stock_hook.get_credentials_and_project_id()
        stock_credentials.token = "primed-token"
        stock_credentials.expiry = __import__("datetime").datetime.utcnow() + __import__("datetime").timedelta(
            hours=1)
        assert authorize(stock_hook)["authorization"] == "Bearer primed-token"

        def batch(hook) -> float:
            start = time.perf_counter()
            for _ in range(WARM_ITERATIONS):
                authorize(hook)
            return (time.perf_counter() - start) / WARM_ITERATIONS

        ours_times: list[float] = []
        stock_times: list[float] = []
        for index in range(WARM_BATCHES):
            pair = [(ours_hook, ours_times), (stock_hook, stock_times)]
            for hook, times in pair if index % 2 == 0 else reversed(pair):
                times.append(batch(hook))
        ours_warm, stock_warm = statistics.median(ours_times), statistics.median(stock_times)
        warm_ratio = ours_warm / stock_warm
        log(f"(ii)  warm get_credentials + before_request: gcp_wif {ours_warm * 1e6:.2f} us, stock SA key "
            f"{stock_warm * 1e6:.2f} us, ratio {warm_ratio:.3f} (goal <= 1.05)")

        # (iii) cold first token with 50 ms per Google hop -------------------------------------------------------
        # The floor is what the network and the servers take: 50 ms per Google hop, plus the time the emulated
        # servers themselves spend (`server_ms` in their log; for STS it includes the replay to AWS), plus one
        # AssumeRole round trip to AWS (the AWS connection assumes a role; timed with a ready client). What is
        # left is this provider's overhead: building the AWS session, signing, google-auth, the cache.
        import boto3

        aws_connection = json.loads(info["env"]["AIRFLOW_CONN_AWS_DEFAULT"])
        sts_client = boto3.client(
            "sts", region_name=info["aws_region"], endpoint_url=info["aws_endpoint"],
            aws_access_key_id=aws_connection["login"], aws_secret_access_key=aws_connection["password"])
        sts_client.get_caller_identity()
        import botocore.session

        from airflow_provider_gcp_wif import masking
        from airflow_provider_gcp_wif.botocore_sharing import shared_botocore_data

        def botocore_setup() -> float:
            """Thread CPU of what AwsBaseHook does around AssumeRole, minus the request: a basic session, its STS
            client, a second session for the assumed credentials (with the shared data loader and built-in handlers,
            as in our path): botocore's own cost, which this provider cannot remove."""
            started = time.thread_time()
            with shared_botocore_data():
                basic = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x",
                                              region_name=info["aws_region"])
                basic.client("sts", endpoint_url=info["aws_endpoint"])
                boto3.session.Session(botocore_session=botocore.session.get_session())
            return time.thread_time() - started

        # Airflow's secrets masker learns each new secret (AWS session credentials, subject, federated and access
        # token; and the connections' secrets when the hooks read them): timed where it happens. Its cost grows
        # with the patterns it already holds (it recompiles one regular expression of all of them per secret).
        masker_spent = [0.0]
        masker_depth = [0]
        add_mask = masker.add_mask

        def timed_add_mask(*args, **kwargs):
            masker_depth[0] += 1
            started = time.thread_time()
            try:
                return add_mask(*args, **kwargs)
            finally:
                masker_depth[0] -= 1
                if masker_depth[0] == 0:  # dicts and lists recurse through add_mask: count the outer call
                    masker_spent[0] += time.thread_time() - started

        masker.add_mask = timed_add_mask
        long_lived_masker = (set(masker.patterns), masker.replacer)

        def cold_run(masker_state) -> tuple[float, float, float, float, float, float | None]:
            """One cold first token: wall, client-thread CPU, masker CPU, floor, CPU of this process's other threads,
            CPU of the emulator's process (seconds; None where it cannot be read)."""
            control.reset()
            for hop in ("sts", "iam"):
                control.inject_faults(hop, kinds=["delay"], rate=1.0, delay_seconds=DELAY)
            wif_credentials.clear_cache()
            # A task's first token also builds the exchange's transport and opens its connections (no keep-alive
            # connection to the emulated servers left over from the previous run).
            wif_transport._transport = None
            if masker_state is not None:
                masker.patterns, masker.replacer = set(masker_state[0]), masker_state[1]
                masking._announced.clear()  # nor has a fresh task announced anything
            masker_spent[0] = 0.0
            emulator_start = process_cpu(emulator.pid)
            start, cpu_start, process_start = time.perf_counter(), time.thread_time(), time.process_time()
            authorize(GCSHook(gcp_conn_id="gcp_wif_default"))
            wall, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
            other_threads = max(0.0, time.process_time() - process_start - cpu)
            emulator_end = process_cpu(emulator.pid)
            emulator_cpu = None if emulator_start is None or emulator_end is None else emulator_end - emulator_start
            masker_cpu = masker_spent[0]
            control.clear_faults()
            server_ms = sum(r.get("server_ms") or 0.0 for r in control.requests()
                            if r["endpoint"] in ("sts", "iam.generateAccessToken"))
            assume_started, assume_cpu_started = time.perf_counter(), time.thread_time()
            sts_client.assume_role(RoleArn=info["role_arn"], RoleSessionName="bench-floor")
            assume_role = time.perf_counter() - assume_started
            assume_role_cpus.append(time.thread_time() - assume_cpu_started)
            return wall, cpu, masker_cpu, 2 * DELAY + server_ms / 1000 + assume_role, other_threads, emulator_cpu

        assume_role_cpus: list[float] = []  # botocore's CPU in the floor's AssumeRole round trip
        long_lived_patterns = len(long_lived_masker[0])
        long_runs = []
        masker.patterns, masker.replacer = set(long_lived_masker[0]), long_lived_masker[1]
        for _ in range(LONG_LIVED_RUNS):  # this process's masker as it is, growing with each run
            long_runs.append(cold_run(None))
        colds, floors, cpus, botocore_cpus, masker_cpus, others = [], [], [], [], [], []
        emulator_cpus: list[float | None] = []
        del assume_role_cpus[:]  # the fresh runs' only
        for _ in range(COLD_RUNS):
            wall, cpu_spent, masker_cpu, floor_run, other_threads, emulator_cpu = cold_run(fresh_masker)
            others.append(other_threads)
            emulator_cpus.append(emulator_cpu)
            colds.append(wall)
            cpus.append(cpu_spent)
            masker_cpus.append(masker_cpu)
            floors.append(floor_run)
            botocore_cpus.append(botocore_setup())
        fresh_patterns = len(fresh_masker[0])
        cold, floor = statistics.median(colds), statistics.median(floors)
        cold_ratio = cold / floor
        log(f"(iii) cold first token: median {cold * 1000:.1f} ms over {COLD_RUNS} runs; floor {floor * 1000:.1f} ms "
            f"= 2 Google hops x {DELAY * 1000:.0f} ms + emulated servers' own time + 1 AssumeRole round trip; "
            f"ratio {cold_ratio:.3f} (goal <= 1.15); vs the bare 2 x {DELAY * 1000:.0f} ms: "
            f"{cold / (2 * DELAY):.2f}x; runs {[round(c * 1000, 1) for c in colds]}; each from the secrets masker "
            f"of a fresh task ({fresh_patterns} patterns)")
        cpu, botocore_cpu, masker_cpu, other_cpu = (statistics.median(v) * 1000
                                                    for v in (cpus, botocore_cpus, masker_cpus, others))
        cpu_model_ratio = (floor * 1000 + cpu) / (floor * 1000)
        ours_ratio = (floor * 1000 + max(0.0, cpu - botocore_cpu - masker_cpu)) / (floor * 1000)
        # What no change of ours can remove: botocore's set-up inside AwsBaseHook and Airflow's masker.
        irreducible_ratio = (floor * 1000 + min(cpu, botocore_cpu + masker_cpu)) / (floor * 1000)
        log(f"      the client thread's CPU per cold token: median {cpu:.1f} ms, of which botocore's session and "
            f"client set-up (AwsBaseHook's two sessions and its STS client) ~{botocore_cpu:.1f} ms and Airflow's "
            f"secrets masker (the secrets we announce, the connections the hooks read) ~{masker_cpu:.1f} ms; the "
            f"rest (this provider, google-auth, AWS signing, HTTP) "
            f"~{max(0.0, cpu - botocore_cpu - masker_cpu):.1f} ms. (floor + CPU) / floor = {cpu_model_ratio:.3f}: "
            f"the ratio when nothing else competes for the CPU; without botocore's set-up and the masker "
            f"{ours_ratio:.3f}; with only them (botocore's and Airflow's, the lowest reachable through AwsBaseHook "
            f"and Airflow's masker) {irreducible_ratio:.3f}")
        assume_role_cpu = statistics.median(assume_role_cpus) * 1000
        # psutil reads the kernel's tick counts (10 ms on Linux): the mean over the runs, not a median.
        emulator_cpu_ms = (None if any(c is None for c in emulator_cpus)
                           else sum(c for c in emulator_cpus if c is not None) / COLD_RUNS * 1000)
        log(f"      the emulated clouds run in their own process (pid {emulator.pid}), as real servers are not in a "
            f"task's: it used "
            f"{'?' if emulator_cpu_ms is None else f'{emulator_cpu_ms:.1f}'} ms of CPU per cold token (mean; their "
            f"handlers' own time is in the floor), this process's other threads {other_cpu:.1f} ms; the floor's "
            f"AssumeRole round trip includes botocore's request CPU ({assume_role_cpu:.1f} ms: serialise, sign, "
            f"parse), which the client's CPU above counts again")
        long_cold, long_cpu, long_masker = (statistics.median(float(run[i] or 0.0) for run in long_runs) * 1000
                                            for i in range(3))
        log(f"      in this long-lived process instead (its masker held {long_lived_patterns} patterns from (i), (ii); "
            f"{LONG_LIVED_RUNS} runs): cold token {long_cold:.1f} ms, CPU {long_cpu:.1f} ms, of which Airflow's "
            f"masker {long_masker:.1f} ms (vs {masker_cpu:.1f} ms in a fresh task): the masker's cost grows with "
            f"every secret a process has announced; not this provider's, and not a task's first token")

        # (v) task start -----------------------------------------------------------------------------------------
        task_numbers = task_start(info, control, home)

    # (iv) plugin activation -------------------------------------------------------------------------------------
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    probes = []
    for _ in range(PLUGIN_RUNS):
        out = subprocess.run([sys.executable, "-c", PLUGIN_PROBE], env=env, capture_output=True, text=True,
                             check=True).stdout
        probes.append(json.loads(out.strip().splitlines()[-1]))
    plugin_ms = statistics.median(p["ms"] for p in probes)
    added = probes[-1]["added"]
    log(f"(iv)  plugin import after airflow: median {plugin_ms:.2f} ms over {PLUGIN_RUNS} fresh interpreters "
        f"(goal < 20 ms); already imported by `import airflow`: {probes[-1]['already']}; modules added "
        f"({len(added)}): {', '.join(added)}")

    print(json.dumps({
        "exchanges_per_50_hooks": ours_exchanges,
        "stock_exchanges_per_50_hooks": stock_exchanges,
        "warm_overhead_ratio": round(warm_ratio, 3),
        "warm_us": {"gcp_wif": round(ours_warm * 1e6, 2), "stock_sa_key": round(stock_warm * 1e6, 2)},
        "cold_token_ratio": round(cold_ratio, 3),
        "cold_token_ms": round(cold * 1000, 1),
        "cold_floor_ms": round(floor * 1000, 1),
        "cold_token_cpu_ms": {"total": round(cpu, 1), "botocore_setup": round(botocore_cpu, 1),
                              "airflow_masker": round(masker_cpu, 1),
                              "rest": round(max(0.0, cpu - botocore_cpu - masker_cpu), 1)},
        "cold_token_ratio_cpu_model": round(cpu_model_ratio, 3),
        # the bench process's threads besides the client's: ~0 now that the emulators run in their own process
        "cold_token_emulator_threads_cpu_ms": round(other_cpu, 1),
        "cold_token_emulator_process_cpu_ms": None if emulator_cpu_ms is None else round(emulator_cpu_ms, 1),
        "cold_floor_assume_role_cpu_ms": round(assume_role_cpu, 1),
        "cold_token_long_lived_ms": round(long_cold, 1),
        "cold_token_long_lived_cpu_ms": {"total": round(long_cpu, 1),
                                         "airflow_masker_long_lived": round(long_masker, 1)},
        "masker_patterns": {"fresh_task": fresh_patterns, "long_lived": long_lived_patterns},
        "cold_token_ratio_beyond_botocore_and_masker": round(ours_ratio, 3),
        "cold_token_ratio_botocore_and_masker_only": round(irreducible_ratio, 3),
        "plugin_activation_ms": round(plugin_ms, 2),
        "plugin_modules_added": added,
        **task_numbers,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

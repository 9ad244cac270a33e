"""`kernel-host mcp` through the official MCP Python SDK (a real client):
list the tools, profile the penguins, recommend and write a manifest, run it
and get an accuracy; a path outside the roots is refused; a hostile kernel
run through the server is contained and the server keeps serving."""

import asyncio
import json
import os
import shutil
from pathlib import Path

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(os.environ.get("KERNEL_HOST_BIN", ROOT / "target/release/kernel-host"))
GUESTS = ROOT / "target/guests/wasm32-wasip2/release"
SHIPPED = ["simple_imputer", "one_hot_encoder", "standard_scaler", "logistic_regression", "sgd_classifier"]


def structured(result):
    data = getattr(result, "structuredContent", None)
    if data is None:
        data = getattr(result, "structured_content", None)
    if data is None:
        data = json.loads(result.content[0].text)
    return data


def failed(result):
    flag = getattr(result, "is_error", None)
    if flag is None:
        flag = getattr(result, "isError", False)
    return bool(flag)


def text(result):
    return " ".join(getattr(c, "text", "") for c in result.content)


def one_step(kernel, extra=""):
    """A one-step manifest on penguins.csv beside it, running `kernel`."""
    return (
        '[pipeline]\nsteps = ["model"]\n[data]\ninput = "penguins.csv"\n'
        'split = { test-fraction = 0.25, seed = 0 }\ntarget = "species"\n'
        'features = ["bill_length_mm"]\n'
        f'[kernels.model]\nsource = "{kernel}"\n' + extra)


async def session_run(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    # The server's kernels live outside its root: manifests may run them,
    # nothing may write there.
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    for k in SHIPPED:
        shutil.copy(GUESTS / f"{k}.wasm", kernels / f"{k}.wasm")
    shutil.copy(ROOT / "examples/penguins/data/penguins.csv", work / "penguins.csv")
    outside = tmp_path / "outside.csv"
    shutil.copy(ROOT / "examples/penguins/data/penguins.csv", outside)
    env = dict(os.environ, KERNEL_HOST_HISTORY="off", KERNEL_HOST_CACHE_DIR=str(ROOT / "target/test-cache"))
    params = StdioServerParameters(
        command=str(CLI),
        args=["mcp", "--root", str(work), "--kernels", str(kernels), "--max-seconds", "20"],
        env=env,
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name for t in (await session.list_tools()).tools}
            assert {"list_kernels", "inspect_kernel", "profile_data", "recommend", "validate_manifest",
                    "run_manifest", "explain", "compare", "tune"} <= tools, tools

            listed = await session.call_tool("list_kernels", {})
            assert not failed(listed), text(listed)
            names = {k["name"] for k in structured(listed)["kernels"]}
            assert {"logistic-regression", "simple-imputer"} <= names, names

            profile = await session.call_tool("profile_data", {"path": str(work / "penguins.csv"), "target": "species"})
            assert not failed(profile), text(profile)
            assert structured(profile)["rows"] == 344
            assert "multiclass" in text(profile)

            manifest = work / "recommended.toml"
            rec = await session.call_tool("recommend", {
                "path": str(work / "penguins.csv"), "target": "species",
                "budget_seconds": 20, "write": str(manifest)})
            assert not failed(rec), text(rec)
            assert manifest.exists()
            assert text(rec).startswith("recommended:"), text(rec)

            valid = await session.call_tool("validate_manifest", {"path": str(manifest)})
            assert not failed(valid) and structured(valid)["ok"], text(valid)

            ran = await session.call_tool("run_manifest", {"path": str(manifest)})
            assert not failed(ran), text(ran)
            report = structured(ran)
            assert report["metric"]["name"] == "accuracy"
            assert report["metric"]["value"] > 0.95, report["metric"]
            assert "accuracy" in text(ran)

            # Compare the recommended pipeline with a variant; tune it briefly.
            variant = work / "variant.toml"
            variant.write_text(manifest.read_text().replace("logistic_regression.wasm", "sgd_classifier.wasm"))
            compared = await session.call_tool("compare", {"manifests": [str(manifest), str(variant)], "folds": 3})
            assert not failed(compared), text(compared)
            assert len(structured(compared)["rows"]) == 2
            assert text(compared).startswith("recommended:"), text(compared)
            tuned = await session.call_tool("tune", {"manifest": str(manifest), "budget_seconds": 10, "trials": 4})
            assert not failed(tuned), text(tuned)
            assert len(structured(tuned)["trials"]) >= 1, text(tuned)

            explained = await session.call_tool("explain", {"path": str(manifest)})
            assert not failed(explained), text(explained)
            assert len(structured(explained)["steps"]) == 4

            # Outside the roots: refused, by what and where.
            refused = await session.call_tool("profile_data", {"path": str(outside)})
            assert failed(refused)
            assert "outside the server's roots" in text(refused), text(refused)
            sneaky = await session.call_tool("profile_data", {"path": str(work / ".." / "outside.csv")})
            assert failed(sneaky) and "outside the server's roots" in text(sneaky), text(sneaky)
            # A manifest under a root that reads data outside it: refused too.
            leaky = work / "leaky.toml"
            leaky.write_text(manifest.read_text().replace('input = "penguins.csv"', f'input = "{outside}"'))
            refused = await session.call_tool("run_manifest", {"path": str(leaky)})
            assert failed(refused) and "outside the server's roots" in text(refused), text(refused)

            # A hostile kernel (an endless loop in fit) is stopped by the
            # sandbox; the server says which kernel and why, and keeps serving.
            shutil.copy(GUESTS / "hostile.wasm", kernels / "hostile.wasm")
            hostile = work / "hostile.toml"
            hostile.write_text(one_step(
                kernels / "hostile.wasm",
                'params = { behaviour = "loop" }\nlimits = { timeout-ms = 500, fuel = 1_000_000_000_000_000 }\n'))
            bad = await session.call_tool("run_manifest", {"path": str(hostile)})
            assert failed(bad), text(bad)
            assert "model" in text(bad), text(bad)
            again = await session.call_tool("profile_data", {"path": str(work / "penguins.csv")})
            assert not failed(again), text(again)
            # A kernel neither under a root nor among the server's kernels: refused.
            stray = tmp_path / "stray"
            stray.mkdir()
            shutil.copy(GUESTS / "logistic_regression.wasm", stray / "lr.wasm")
            strayed = work / "stray.toml"
            strayed.write_text(one_step(stray / "lr.wasm"))
            refused = await session.call_tool("run_manifest", {"path": str(strayed)})
            assert failed(refused) and "outside the server's roots" in text(refused), text(refused)


def test_an_agent_profiles_recommends_and_runs_through_mcp(tmp_path):
    asyncio.run(asyncio.wait_for(session_run(tmp_path), timeout=300))

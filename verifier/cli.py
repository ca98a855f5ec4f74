"""`hall-verify BUNDLE [--hub-key HEX]`: check an exported audit bundle and say what it proved.

Exit 0 when everything holds (printing what was proved), 1 naming the first problem, 2 for a path
that is not a bundle or a bad argument.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from verifier.bundle import BundleError, read_bundle
from verifier.check import Proof, check_bundle
from wire.envelope import HEX64_RE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hall-verify",
                                     description="核验审计日志导出包 verify an audit bundle")
    parser.add_argument("bundle", type=Path, help="the bundle: a directory or a .zip (`hall-hub log export`)")
    parser.add_argument("--hub-key", help="the hub's public key as you know it (64 hex): the bundle's "
                                          "must be this one")
    args = parser.parse_args(argv)
    if args.hub_key is not None and not HEX64_RE.fullmatch(args.hub_key):
        print("错误 error: --hub-key is 64 lowercase hex characters", file=sys.stderr)
        return 2
    try:
        bundle = read_bundle(args.bundle)
    except BundleError as exc:
        print(f"核验失败 verification FAILED: {exc}")
        return 1 if (args.bundle / "manifest.json").exists() or args.bundle.suffix == ".zip" else 2
    proof = check_bundle(bundle, args.hub_key)
    if proof.problem is not None:
        print(f"核验失败 verification FAILED: {proof.problem}")
        return 1
    print("\n".join(proved(proof, str(bundle.manifest.get("hall")))))
    return 0


def proved(proof: Proof, hall: str) -> list[str]:
    """What a clean bundle proved, line by line, and what it does not."""
    count = proof.last - proof.first + 1
    head = proof.head
    if proof.first == 1:
        scope = "从日志第一条起 from the log's first entry (zero hash)"
    else:
        span = proof.range or {}
        scope = (f"仅证明所选范围 this range only ({span.get('from')} ~ {span.get('to')}), anchored at the "
                 f"prev_hash {proof.anchored[:16]}… of entry {proof.first}; entries before it are not in "
                 "the bundle")
    configured = "; before the first logged roster: keys configured now" if proof.keys_configured else ""
    devices = ", ".join(f"{device} {n}" for device, n in proof.devices.items()) or "无 none"
    lines = [
        f"核验通过 bundle verified: hall {hall}",
        f"  条目 entries: {proof.first}..{proof.last} ({count}), 哈希与链接完整, 时间不倒退 "
        f"hashes, links and time order hold; {scope}",
        f"  链头 head: {head.get('entries')}:{head.get('hash')} 由中心签名 signed by the hub "
        f"{head.get('hub_public_key')} at {head.get('at')}",
        f"  事件 events: {proof.events} 设备签名均有效 device signatures hold (keys in force from the "
        f"roster history{configured})",
        f"  设备 devices: {devices}; 序号连续 seqs continuous ({proof.gaps} logged seq_gap, "
        f"{proof.resets} seq_reset)",
        f"  日结链头 daily close heads: {proof.closes} match the chain",
    ]
    if proof.withheld:
        lines.append(f"  个人信息 {proof.withheld} entries withheld (personal data): linked, content "
                     "not checked")
    lines.append(f"  {proof.witnesses}")
    for note in proof.open_gaps:
        lines.append(f"  注意 open gap (newest events, not yet due): {note}")
    lines.append("  未能证明 not proved: that nothing was cut after the newest device witness or the head, "
                 "nor a rewrite of entries no device had witnessed yet (compare the head with one kept "
                 "outside: a printed notice, `hall-hub log head`, and the hub's key with --hub-key)")
    return lines


if __name__ == "__main__":
    sys.exit(main())

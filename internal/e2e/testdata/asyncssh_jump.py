"""Jump through Gatehouse with AsyncSSH's connect(tunnel=...).

The outer connection authenticates to the bastion with the Gatehouse
certificate; the inner one to NODE:22 is tunnelled through it with the same
key. Host keys are checked against --known-hosts, whose @cert-authority
line trusts the Gatehouse host CA for the bastion and every node. The
remote command's output is copied to ours and its exit status becomes ours.
"""

import argparse
import asyncio
import sys

import asyncssh


async def run(a):
    host, port = a.bastion.rsplit(":", 1)
    common = dict(client_keys=[(a.key, a.cert)], known_hosts=a.known_hosts,
                  agent_path=None, config=[], password=None)
    async with asyncssh.connect(host, int(port), username=a.user, **common) as outer:
        async with asyncssh.connect(a.node, 22, tunnel=outer, username=a.login, **common) as inner:
            result = await inner.run(a.command, check=False)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.stdout.flush()
    return result.exit_status


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bastion", required=True, help="HOST:PORT")
    p.add_argument("--user", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--known-hosts", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--login", required=True)
    p.add_argument("command")
    a = p.parse_args()
    sys.exit(asyncio.run(run(a)))


if __name__ == "__main__":
    main()

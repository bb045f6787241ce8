"""Jump through Gatehouse with Paramiko, the way Fabric's gateway= does.

An outer SSHClient authenticates to the bastion with the Gatehouse
certificate; a direct-tcpip channel of it to NODE:22 becomes the socket of
the inner connection. --method picks what the inner connection tries:

  connect               SSHClient.connect(sock=channel, pkey=key): Paramiko
                        offers its public key first (Fabric, Ansible)
  none, password,       a bare Transport over the channel that tries only
  keyboard-interactive  that method

The remote command's stdout and stderr are copied to ours and its exit
status becomes ours. Host keys are checked against --known-hosts with
RejectPolicy: Paramiko does not verify host certificates (it compares the key
inside one with known_hosts), so the file pins the bastion's host key for the
bastion's address and for the node name.
"""

import argparse
import sys

import paramiko


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bastion", required=True, help="HOST:PORT")
    p.add_argument("--user", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--known-hosts", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--login", required=True)
    p.add_argument("--method", default="connect",
                   choices=["connect", "none", "password", "keyboard-interactive"])
    p.add_argument("command")
    a = p.parse_args()

    host, port = a.bastion.rsplit(":", 1)
    key = paramiko.Ed25519Key.from_private_key_file(a.key)
    key.load_certificate(a.cert)

    outer = paramiko.SSHClient()
    outer.load_host_keys(a.known_hosts)
    outer.set_missing_host_key_policy(paramiko.RejectPolicy())
    outer.connect(host, int(port), username=a.user, pkey=key,
                  allow_agent=False, look_for_keys=False, timeout=30)
    channel = outer.get_transport().open_channel(
        "direct-tcpip", (a.node, 22), ("127.0.0.1", 0))

    if a.method == "connect":
        inner = paramiko.SSHClient()
        inner.load_host_keys(a.known_hosts)
        inner.set_missing_host_key_policy(paramiko.RejectPolicy())
        inner.connect(a.node, 22, username=a.login, pkey=key, sock=channel,
                      allow_agent=False, look_for_keys=False, timeout=30)
        transport = inner.get_transport()
    else:
        transport = paramiko.Transport(channel)
        transport.start_client(timeout=30)
        known = paramiko.HostKeys(a.known_hosts).lookup(a.node)
        served = transport.get_remote_server_key()
        if not known or served not in known.values():
            sys.exit("paramiko_jump: host key for %s does not match known hosts" % a.node)
        if a.method == "none":
            transport.auth_none(a.login)
        elif a.method == "password":
            transport.auth_password(a.login, "not-a-password")
        else:
            def handler(title, instructions, prompts):
                if prompts:
                    sys.exit("paramiko_jump: the inner hop prompted: %r" % (prompts,))
                return []
            transport.auth_interactive(a.login, handler)
        if not transport.is_authenticated():
            sys.exit("paramiko_jump: inner hop not authenticated")

    session = transport.open_session(timeout=30)
    session.exec_command(a.command)
    stdout = session.makefile("rb")
    stderr = session.makefile_stderr("rb")
    out = stdout.read()
    err = stderr.read()
    status = session.recv_exit_status()
    sys.stdout.buffer.write(out)
    sys.stderr.buffer.write(err)
    sys.stdout.flush()
    transport.close()
    outer.close()
    sys.exit(status)


if __name__ == "__main__":
    main()

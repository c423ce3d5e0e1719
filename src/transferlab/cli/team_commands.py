"""Team registry commands: users, tokens, whoami, requests, approve, reject."""

from __future__ import annotations

import argparse
import sys

from transferlab.cli.output import emit_json, format_table
from transferlab.registry import Registry
from transferlab.registry.api import require_registry_file
from transferlab.registry.identity import DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, ROLES, TOKEN_VARIABLE


def _registry(args: argparse.Namespace) -> Registry:
    require_registry_file(args.registry)
    return Registry(args.registry)


def _show_token(token: str, user: str, expires_at) -> None:
    """The token goes to stdout (for a script to capture); the warning to stderr."""
    print(token)
    print(
        f"this is {user}'s token, valid until {expires_at:%Y-%m-%d %H:%M} UTC; it is shown this "
        f"once (only its hash is stored): keep it in a secret store and use it as "
        f"{TOKEN_VARIABLE}=<token>",
        file=sys.stderr,
    )


def cmd_users_add(args: argparse.Namespace) -> int:
    registry = Registry(args.registry)  # the first admin may create the registry's schema
    first = not registry.team_mode()
    user, token = registry.add_user(args.name, args.role)
    if args.json:
        emit_json({"user": user, "token": token, "team_mode_turned_on": first})
        return 0
    print(f"added {args.name} as {args.role}", file=sys.stderr)
    if first:
        print(
            f"team mode is on for {registry.display_location}: every write now needs a token, "
            "and production moves only with a second person's approval",
            file=sys.stderr,
        )
    _show_token(token, args.name, user["token"]["expires_at"])
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    rows = _registry(args).users()
    if args.json:
        emit_json(rows)
        return 0
    columns = ["name", "role", "disabled", "created_at", "created_by"]
    print(format_table(rows, columns) if rows else "no users: this is a one-person registry")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    row = _registry(args).disable_user(args.name)
    if args.json:
        emit_json(row)
    else:
        print(f"disabled {args.name}: their tokens are refused from now on")
    return 0


def cmd_whoami(args: argparse.Namespace) -> int:
    user = _registry(args).whoami()
    if args.json:
        emit_json(None if user is None else vars(user))
    elif user is None:
        print("one-person registry (no users): writes are recorded as $TRANSFERLAB_USER / login")
    else:
        print(f"{user.name} ({user.role}), token tlab_{user.token_id}_...")
    return 0


def cmd_tokens_create(args: argparse.Namespace) -> int:
    row, token = _registry(args).create_token(
        args.user, expires_in_days=args.expires_in, description=args.description
    )
    if args.json:
        emit_json({**row, "token": token})
    else:
        _show_token(token, row["user_name"], row["expires_at"])
    return 0


def cmd_tokens_list(args: argparse.Namespace) -> int:
    rows = _registry(args).tokens(args.user, include_inactive=args.all)
    if args.json:
        emit_json(rows)
        return 0
    for row in rows:
        row["token"] = f"tlab_{row['token_id']}_..."
        row["state"] = "revoked" if row["revoked_at"] else "active"
    columns = ["token", "user_name", "state", "expires_at", "last_used_at", "description"]
    print(format_table(rows, columns) if rows else "no tokens")
    return 0


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    token_id = args.token_id.removeprefix("tlab_").split("_", 1)[0]
    row = _registry(args).revoke_token(token_id)
    if args.json:
        emit_json(row)
    else:
        print(
            f"revoked tlab_{token_id}_... of {row['user_name']} at "
            f"{row['revoked_at']:%Y-%m-%d %H:%M} UTC"
        )
    return 0


def cmd_requests(args: argparse.Namespace) -> int:
    rows = _registry(args).promotion_requests(status=args.status, model_name=args.model)
    if args.json:
        emit_json(rows)
        return 0
    for row in rows:
        row["id"] = row["request_id"]
        row["move"] = f"{row['from_version'] or '(unset)'} -> {row['version_id']}"
    columns = ["id", "status", "model_name", "alias", "move", "requester", "created_at",
               "decided_by", "reason", "decision_reason"]  # fmt: skip
    print(format_table(rows, columns) if rows else "no promotion requests")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from transferlab.cli.promotion_commands import gate_lines
    from transferlab.promotion import PromotionRefused, approve, load_policy

    registry = _registry(args)
    try:
        done = approve(registry, args.request, reason=args.reason, policy=load_policy(args.policy))
    except PromotionRefused as refused:
        decision = refused.decision
        if args.json:
            emit_json({"approved": False, **decision.to_dict()})
        else:
            print(f"request #{args.request} stays open: the gates no longer hold")
            print("\n".join(gate_lines(decision)))
        print(f"error: {refused.problem.splitlines()[0]}", file=sys.stderr)
        print("  fix: fix what the gates name, or reject the request", file=sys.stderr)
        return 1
    if args.json:
        emit_json({"approved": True, **done.to_dict()})
        return 0
    request = done.request
    print(
        f"approved #{request['request_id']} (requested by {request['requester']}): "
        f"{request['model_name']}@{request['alias']} {done.from_version or '(unset)'} -> "
        f"{request['version_id']}"
    )
    print("\n".join(gate_lines(done.decision)))
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    from transferlab.promotion import reject

    request = reject(_registry(args), args.request, reason=args.reason)
    if args.json:
        emit_json(request)
    else:
        print(f"{request['status']} #{request['request_id']} by {request['decided_by']}")
    return 0


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    def command(parent, name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    users = commands.add_parser("users", help="users of a team registry and their roles")
    users_commands = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = command(
        users_commands,
        "add",
        cmd_users_add,
        "add a user and print their first token once (the first user, an admin, turns team "
        "mode on and needs no token; later ones need an admin's)",
    )
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    command(users_commands, "list", cmd_users_list, "the users and their roles")
    disable = command(users_commands, "disable", cmd_users_disable, "disable a user (admin)")
    disable.add_argument("name")

    tokens = commands.add_parser("tokens", help="API tokens of a team registry")
    token_commands = tokens.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    create = command(
        token_commands, "create", cmd_tokens_create, "create a token and print it once"
    )
    create.add_argument("--user", help="whose token (default: yours; another's: admin)")
    create.add_argument(
        "--expires-in",
        type=float,
        default=DEFAULT_TOKEN_DAYS,
        metavar="DAYS",
        help=f"lifetime in days (default {DEFAULT_TOKEN_DAYS}, at most {MAX_TOKEN_DAYS})",
    )
    create.add_argument("--description", help="what the token is for")
    listing = command(token_commands, "list", cmd_tokens_list, "tokens (never their secret)")
    listing.add_argument("--user", help="whose tokens (default: yours; an admin sees all)")
    listing.add_argument("--all", action="store_true", help="also revoked and expired ones")
    revoke = command(token_commands, "revoke", cmd_tokens_revoke, "revoke a token at once")
    revoke.add_argument("token_id", metavar="ID", help="the 12 hex digits after tlab_")

    command(commands, "whoami", cmd_whoami, "the user your token belongs to")

    requests = command(commands, "requests", cmd_requests, "promotion requests, newest first")
    requests.add_argument("model", nargs="?")
    requests.add_argument("--status", choices=["open", "approved", "rejected", "withdrawn"])

    approve = command(
        commands,
        "approve",
        cmd_approve,
        "approve someone else's promotion request: the gates are checked again and the alias "
        "moves (approver)",
    )
    approve.add_argument("request", type=int, metavar="REQUEST")
    approve.add_argument("--reason", help="why (recorded in the audit log)")
    approve.add_argument("--policy", help="promotion policy YAML (another than the packaged "
                         "one: admin)")  # fmt: skip
    reject = command(
        commands,
        "reject",
        cmd_reject,
        "reject someone else's promotion request (approver), or withdraw your own",
    )
    reject.add_argument("request", type=int, metavar="REQUEST")
    reject.add_argument("--reason", required=True, help="why (recorded in the audit log)")

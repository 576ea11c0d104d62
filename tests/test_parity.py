"""ControlPlane and AsyncControlPlane expose the same methods with the same parameters."""

from __future__ import annotations

import inspect

from agent_control_plane import AsyncControlPlane, ControlPlane


def _public(cls: type) -> dict[str, object]:
    return {name: member for name, member in inspect.getmembers(cls) if not name.startswith("_")}


def test_both_classes_have_the_same_public_names() -> None:
    sync_names, async_names = set(_public(ControlPlane)), set(_public(AsyncControlPlane))
    assert sync_names - async_names == set(), "missing from AsyncControlPlane"
    assert async_names - sync_names == set(), "missing from ControlPlane"
    assert "govern" in sync_names


def test_async_methods_are_awaitable_and_take_the_same_parameters() -> None:
    sync_members, async_members = _public(ControlPlane), _public(AsyncControlPlane)
    for name, sync_member in sync_members.items():
        async_member = async_members[name]
        if isinstance(inspect.getattr_static(ControlPlane, name), property):
            assert isinstance(inspect.getattr_static(AsyncControlPlane, name), property), name
            continue
        if not callable(sync_member):
            continue
        sync_signature = inspect.signature(sync_member)
        async_signature = inspect.signature(async_member)  # type: ignore[arg-type]
        assert list(sync_signature.parameters) == list(async_signature.parameters), name
        if sync_member is async_member:
            continue  # shared and I/O-free (defined once on the common base class)
        # open() is a classmethod; token_guard returns an (async) context manager.
        if name not in ("open", "token_guard"):
            assert inspect.iscoroutinefunction(async_member), name
            assert not inspect.iscoroutinefunction(sync_member), name
        if name != "open":
            assert async_member.__doc__ == sync_member.__doc__ or name in ("close",), name

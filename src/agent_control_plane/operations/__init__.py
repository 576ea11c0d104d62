"""Operations: one function per public method, each running its own transaction(s) on a
fresh SQLAlchemy Connection. ControlPlane calls them directly; AsyncControlPlane calls
the very same functions through ``AsyncConnection.run_sync``."""

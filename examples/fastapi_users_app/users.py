"""The app's own users, as a fastapi-users project has them: nothing here knows about bastion.

A small SQLAlchemy 2 adapter stands in for ``fastapi-users-db-sqlalchemy``
(which pins SQLAlchemy below 2.1); it implements the same
``BaseUserDatabase`` interface, so the routers behave exactly as in any
fastapi-users app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import Depends
from fastapi_users import BaseUserManager, FastAPIUsers, IntegerIDMixin, schemas
from fastapi_users.authentication import (
    AuthenticationBackend,
    BearerTransport,
    CookieTransport,
    JWTStrategy,
)
from fastapi_users.db import BaseUserDatabase
from sqlalchemy import Boolean, Integer, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "User", "UserCreate", "UserRead", "build_users"]


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "example_user"

    # Plain attribute types for the checker, as fastapi-users' own SQLAlchemy table
    # does: its UserProtocol wants attributes, and Mapped[...] descriptors are not.
    if TYPE_CHECKING:
        id: int
        email: str
        hashed_password: str
        is_active: bool
        is_superuser: bool
        is_verified: bool
    else:
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
        hashed_password: Mapped[str] = mapped_column(String(1024))
        is_active: Mapped[bool] = mapped_column(Boolean, default=True)
        is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
        is_verified: Mapped[bool] = mapped_column(Boolean, default=False)


class UserRead(schemas.BaseUser[int]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


class UserDatabase(BaseUserDatabase[User, int]):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, id: int) -> User | None:
        return await self.session.get(User, id)

    async def get_by_email(self, email: str) -> User | None:
        query = select(User).where(func.lower(User.email) == email.lower())
        return await self.session.scalar(query)

    async def create(self, create_dict: dict[str, Any]) -> User:
        user = User(**create_dict)
        self.session.add(user)
        await self.session.commit()
        await self.session.refresh(user)
        return user

    async def update(self, user: User, update_dict: dict[str, Any]) -> User:
        for key, value in update_dict.items():
            setattr(user, key, value)
        await self.session.commit()
        return user

    async def delete(self, user: User) -> None:
        await self.session.delete(user)
        await self.session.commit()


class UserManager(IntegerIDMixin, BaseUserManager[User, int]):
    def __init__(self, user_db: UserDatabase, secret: str) -> None:
        super().__init__(user_db)
        self.reset_password_token_secret = secret
        self.verification_token_secret = secret


def build_users(
    sessions: async_sessionmaker[AsyncSession], secret: str
) -> tuple[
    FastAPIUsers[User, int], AuthenticationBackend[User, int], AuthenticationBackend[User, int]
]:
    """fastapi-users wired as its documentation shows: a JWT (bearer) and a cookie backend."""

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    async def get_user_db(
        session: AsyncSession = Depends(get_session),  # noqa: B008 - FastAPI's idiom
    ) -> AsyncIterator[UserDatabase]:
        yield UserDatabase(session)

    async def get_user_manager(
        user_db: UserDatabase = Depends(get_user_db),  # noqa: B008 - FastAPI's idiom
    ) -> AsyncIterator[UserManager]:
        yield UserManager(user_db, secret)

    def get_jwt_strategy() -> JWTStrategy[User, int]:
        return JWTStrategy(secret=secret, lifetime_seconds=3600)

    jwt = AuthenticationBackend(
        name="jwt",
        transport=BearerTransport(tokenUrl="auth/jwt/login"),
        get_strategy=get_jwt_strategy,
    )
    cookie = AuthenticationBackend(
        name="cookie", transport=CookieTransport(cookie_max_age=3600), get_strategy=get_jwt_strategy
    )
    return FastAPIUsers[User, int](get_user_manager, [jwt, cookie]), jwt, cookie

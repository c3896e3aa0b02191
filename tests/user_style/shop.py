"""A small application with gw tasks: what a user's own code looks like."""

from __future__ import annotations

import msgspec

import gw


class Order(msgspec.Struct):
    order_id: int
    email: str


class Receipt(msgspec.Struct):
    order_id: int
    to: str


@gw.task("place_order", max_attempts=3)
async def place_order(order: Order, ctx: gw.JobContext) -> None:
    if order.order_id <= 0:
        raise gw.PermanentFailure(f"order {order.order_id} does not exist")
    # Placing an order enqueues its receipt.
    await ctx.utils.add_job(send_receipt, Receipt(order_id=order.order_id, to=order.email))


@gw.task("send_receipt", queue_name="mail")
async def send_receipt(receipt: Receipt) -> None:
    if "@" not in receipt.to:
        raise ValueError(f"cannot mail {receipt.to!r}")


tasks = [place_order, send_receipt]

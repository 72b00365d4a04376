/**
 * The AMQP side of the listener, over `amqplib` (scoped: the connection closes with the scope). It declares the
 * topology the Data Store's feed needs (../shared/AMQP.md §1, §4):
 *
 * - the publisher's exchange (`irods`, topic, durable — declared as the existing one is, so it is never changed);
 * - our queue as a RabbitMQ **stream** (`x-queue-type: stream`), durable, bound to the metadata and move keys. A
 *   stream gives every message a stable, increasing offset (header `x-stream-offset`): the message id the feed
 *   lacks. The listener resumes from the offset its committed snapshots name, so a redelivery is recognised by its
 *   offset, never by its content. Retention is by age (`x-max-age`, default 7 days);
 * - a classic durable dead-letter queue `<queue>.dead-letter` for bodies that cannot be events: each is published
 *   there (publisher confirms) with its reason, routing key and offset in headers.
 *
 * Owns: `AmqpSettings`, `Delivery`, `FeedConnection`, `connectFeed`, `AmqpUnavailable`, `publicTarget`.
 */
import amqp from "amqplib"
import { Deferred, Effect, Exit, Queue, Redacted, Schema, type Scope } from "effect"
import { BINDING_KEYS } from "./messages.js"

export interface AmqpSettings {
  readonly uri: Redacted.Redacted<string>
  readonly exchange: string
  readonly queue: string
  /** Unacknowledged deliveries in flight; bounds what one batch can hold. */
  readonly prefetch: number
  /** Stream retention (`x-max-age`), e.g. `7D`. */
  readonly maxAge: string
}

export class AmqpUnavailable extends Schema.TaggedError<AmqpUnavailable>()("AmqpUnavailable", {
  target: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `AMQP broker ${this.target}: ${this.reason}`
  }
}

/** `host:port/vhost` of a URI: what errors and logs may show (never the password). */
export const publicTarget = (uri: Redacted.Redacted<string>): string => {
  try {
    const u = new URL(Redacted.value(uri))
    return `${u.hostname}:${u.port || "5672"}${u.pathname === "" ? "/" : decodeURIComponent(u.pathname)}`
  } catch {
    return "(unparseable AMQP URI)"
  }
}

export interface Delivery {
  /** The stream offset: stable across redeliveries and restarts. */
  readonly offset: number
  readonly routingKey: string
  readonly content: Buffer
  /** When this process received it (ms since epoch): the change's valid time, as the feed carries none. */
  readonly receivedAt: number
  /** amqplib's message, to acknowledge. */
  readonly raw: amqp.ConsumeMessage
}

export interface FeedConnection {
  readonly deliveries: Queue.Dequeue<Delivery>
  /** Fails when the connection or channel is gone (broker down, closed, consumer cancelled). */
  readonly closed: Deferred.Deferred<never, AmqpUnavailable>
  /** Acknowledge every delivery up to and including `d` (after its snapshot is committed). */
  readonly ackThrough: (d: Delivery) => Effect.Effect<void>
  /** Publish a delivery to the dead-letter queue with its reason (confirmed by the broker). */
  readonly deadLetter: (d: Delivery, reason: string) => Effect.Effect<void, AmqpUnavailable>
}

const failure = (target: string, e: unknown) =>
  new AmqpUnavailable({ target, reason: e instanceof Error ? e.message : String(e) })

/** Connects, declares the topology and consumes the stream from `fromOffset` on. */
export const connectFeed = (
  settings: AmqpSettings,
  fromOffset: number
): Effect.Effect<FeedConnection, AmqpUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const target = publicTarget(settings.uri)
    const closed = yield* Deferred.make<never, AmqpUnavailable>()
    const deliveries = yield* Queue.unbounded<Delivery>()
    const lost = (reason: string) => Deferred.unsafeDone(closed, Exit.fail(new AmqpUnavailable({ target, reason })))
    const conn = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => amqp.connect(Redacted.value(settings.uri), { timeout: 5000 }),
        catch: (e) => failure(target, e)
      }),
      (c) => Effect.promise(() => c.close().catch(() => undefined))
    )
    conn.on("error", (e: Error) => lost(e.message))
    conn.on("close", () => lost("connection closed"))
    const dlq = `${settings.queue}.dead-letter`
    const [consumer, publisher] = yield* Effect.tryPromise({
      try: async () => {
        const ch = await conn.createChannel()
        ch.on("error", (e: Error) => lost(`channel: ${e.message}`))
        ch.on("close", () => lost("channel closed"))
        await ch.assertExchange(settings.exchange, "topic", { durable: true, autoDelete: false })
        await ch.assertQueue(settings.queue, {
          durable: true,
          autoDelete: false,
          exclusive: false,
          arguments: { "x-queue-type": "stream", "x-max-age": settings.maxAge }
        })
        for (const key of BINDING_KEYS) await ch.bindQueue(settings.queue, settings.exchange, key)
        await ch.assertQueue(dlq, { durable: true, autoDelete: false })
        await ch.prefetch(settings.prefetch)
        const pub = await conn.createConfirmChannel()
        pub.on("error", (e: Error) => lost(`publisher channel: ${e.message}`))
        return [ch, pub] as const
      },
      catch: (e) => failure(target, e)
    })
    yield* Effect.tryPromise({
      try: () =>
        consumer.consume(settings.queue, (msg) => {
          if (msg === null) return lost("consumer cancelled by the broker")
          const offset = Number(msg.properties.headers?.["x-stream-offset"])
          // A stream attaches at the start of the chunk holding `fromOffset`: earlier messages are skipped here.
          if (!Number.isSafeInteger(offset) || offset < fromOffset) {
            if (!Number.isSafeInteger(offset)) lost("a delivery without x-stream-offset (is the queue a stream?)")
            else consumer.ack(msg)
            return
          }
          Queue.unsafeOffer(deliveries, {
            offset,
            routingKey: msg.fields.routingKey,
            content: msg.content,
            receivedAt: Date.now(),
            raw: msg
          })
        }, { noAck: false, arguments: { "x-stream-offset": fromOffset } }),
      catch: (e) => failure(target, e)
    })
    return {
      deliveries,
      closed,
      ackThrough: (d) =>
        Effect.sync(() => {
          try {
            consumer.ack(d.raw, true)
          } catch {
            // The channel is gone: nothing to acknowledge; a stream does not redeliver by acknowledgement anyway.
          }
        }),
      deadLetter: (d, reason) =>
        Effect.async<void, AmqpUnavailable>((resume) => {
          try {
            publisher.sendToQueue(dlq, d.content, {
              persistent: true,
              headers: {
                "x-mesa-reason": reason.slice(0, 4000),
                "x-mesa-routing-key": d.routingKey,
                "x-mesa-offset": d.offset,
                "x-mesa-queue": settings.queue
              }
            }, (err: unknown) => resume(err == null ? Effect.void : Effect.fail(failure(target, err))))
          } catch (e) {
            resume(Effect.fail(failure(target, e)))
          }
        })
    } satisfies FeedConnection
  })

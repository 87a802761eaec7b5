"""Classroom sessions: a presenter's view followed by a class, and the class's images sent
back to the presenter.

    backend = await open_backend(settings)       # in this process, or Redis when configured
    code, token = await backend.create()
    await backend.set_state(code, token, '{"layer": 3}')
    follower, state = await backend.join(code, "f1")  # what GET .../events streams
    state = await follower.next(timeout=15)           # the next one, or None after 15 s
    await backend.leave(code, follower)

`codes` makes the join codes and tokens, `backend` holds the interface and the local
fan-out both implementations share, `memory` keeps sessions in this process (one worker),
`redis_backend` keeps them in Redis (several workers or machines), `wall` turns the class's
submissions into the presenter's wall and a confusion table.
"""

# ConvScope: docker build -t convscope . && docker run -p 8000:8000 convscope

# Build the wheel in its own stage, so the image holds the installed package, not the source.
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/convscope

# Dependencies first, read from pyproject.toml alone: a code change reuses this layer.
COPY pyproject.toml .
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install --no-cache-dir -r requirements.txt

COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels

RUN useradd --create-home --uid 10001 --user-group convscope
# Numeric, so that a host or orchestrator can check it is not root.
USER 10001

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CONVSCOPE_PORT', '8000'), timeout=4)"]
CMD ["convscope", "serve", "--host", "0.0.0.0"]

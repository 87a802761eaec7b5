"""HTTP routes: one module per resource, each with an APIRouter that app/main.py includes."""

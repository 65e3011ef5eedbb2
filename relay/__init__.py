"""Mirror package."""

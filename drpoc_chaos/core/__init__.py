"""The pure core: what a drill is and how it is judged — types, metrics, the verdict, feasibility arithmetic,
formatting and waiting. No SSH, no SQL, no files: everything above (services, activities, the drill control, the
scheduler, the evidence) imports from here, never the other way round."""
